"""Who may open a meeting socket (SPEC §1). Refusals happen before any audio is read."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette import status

from service.settings import Settings

logger = logging.getLogger(__name__)


class AccessRefused(Exception):
    def __init__(self, reason: str, close_code: int = status.WS_1008_POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


def extract_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <JWT>` wins over `?auth_token=`."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = query.get("auth_token", "").strip()
    return token or None


def check_access(settings: Settings, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    """Raises AccessRefused with a reason the client can act on; returns when access is granted."""
    if settings.bypass_authorization:
        return
    if not settings.asap_pub_keys_repo_url:
        raise AccessRefused(
            "no key source to verify tokens: set ASAP_PUB_KEYS_REPO_URL (or BYPASS_AUTHORIZATION=1)"
        )
    if extract_token(headers, query) is None:
        raise AccessRefused("missing token: send 'Authorization: Bearer <JWT>' or ?auth_token=<JWT>")
    raise AccessRefused("token verification is not available on this server yet; no token is accepted")

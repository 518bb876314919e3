"""Who may open a meeting socket (SPEC §1). Refusals happen before any audio is read.

Tokens are ASAP-style JWTs: RS256 or ES256 with a `kid` whose public key the KeyStore finds, an
accepted `aud`, an `exp`, and a short lifetime. The algorithm is chosen by the key's type, never by
the token; HS256 is accepted only with ASAP_SHARED_SECRET and only for kids that have no public key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from starlette import status

from ingress.keys import KeyStore, Outcome
from service.settings import Settings

logger = logging.getLogger(__name__)

LEEWAY_S = 30
"""Clock skew tolerated on exp, nbf and iat."""
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
SHARED_SECRET_ALGORITHM = "HS256"
MEETING_CLAIMS = ("room", "meeting_id")
ANY_ROOM = "*"
MAX_KID_IN_REASON = 64


class AccessRefused(Exception):
    def __init__(self, reason: str, close_code: int = status.WS_1008_POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


@dataclass(frozen=True)
class Grant:
    """Access granted: the verified claims (empty when authorization is bypassed)."""

    claims: Mapping[str, Any] = field(default_factory=dict)
    kid: str | None = None


def extract_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <JWT>` wins over `?auth_token=`."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = query.get("auth_token", "").strip()
    return token or None


async def check_access(
    settings: Settings,
    keys: KeyStore | None,
    meeting_id: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
) -> Grant:
    """Returns the grant, or raises AccessRefused with a reason the client can act on."""
    if settings.bypass_authorization:
        return Grant()
    if keys is None and settings.asap_shared_secret is None:
        raise AccessRefused(
            "no key source to verify tokens: set ASAP_PUB_KEYS_REPO_URL (or BYPASS_AUTHORIZATION=1)"
        )
    if not settings.asap_pub_keys_auds:
        raise AccessRefused(
            "the server has no audiences configured (ASAP_PUB_KEYS_AUDS): no token is accepted"
        )
    token = extract_token(headers, query)
    if token is None:
        raise AccessRefused("missing token: send 'Authorization: Bearer <JWT>' or ?auth_token=<JWT>")
    algorithm, kid = _read_header(token, _accepted_algorithms(settings))
    key = await _verification_key(settings, keys, algorithm, kid)
    claims = _verify(settings, token, key, algorithm)
    _check_meeting(claims, meeting_id)
    logger.info(
        "meeting %s: token accepted (kid %s, sub %s)", meeting_id, _shown(kid), _shown(claims.get("sub"))
    )
    return Grant(claims=claims, kid=kid)


def _accepted_algorithms(settings: Settings) -> tuple[str, ...]:
    if settings.asap_shared_secret is None:
        return ASYMMETRIC_ALGORITHMS
    return (*ASYMMETRIC_ALGORITHMS, SHARED_SECRET_ALGORITHM)


def _read_header(token: str, accepted: tuple[str, ...]) -> tuple[str, str]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AccessRefused("malformed token: not a JWT") from None
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in accepted:
        raise AccessRefused(
            f"unsupported algorithm {_shown(algorithm)}: sign tokens with {' or '.join(accepted)}"
        )
    if not isinstance(kid, str) or not kid:
        raise AccessRefused("malformed token: its header has no kid")
    return algorithm, kid


async def _verification_key(settings: Settings, keys: KeyStore | None, algorithm: str, kid: str) -> Any:
    """The key to check the signature with; its type (not the token) decides the algorithm."""
    lookup = await keys.lookup(kid) if keys is not None else None
    if lookup is not None and lookup.outcome is Outcome.UNAVAILABLE:
        raise AccessRefused(
            f"signing key (kid {_shown(kid)}) could not be fetched; try again later",
            status.WS_1013_TRY_AGAIN_LATER,
        )
    if algorithm == SHARED_SECRET_ALGORITHM and settings.asap_shared_secret is not None:
        if lookup is not None and lookup.outcome is Outcome.FOUND:
            raise AccessRefused(f"unsupported algorithm HS256 for kid {_shown(kid)}: it has a public key")
        return settings.asap_shared_secret.get_secret_value()
    if lookup is None or lookup.key is None:
        raise AccessRefused(f"unknown signing key (kid {_shown(kid)})")
    expected = "RS256" if isinstance(lookup.key, RSAPublicKey) else "ES256"
    if algorithm != expected:
        raise AccessRefused(
            f"unsupported algorithm {algorithm} for kid {_shown(kid)}: its key signs {expected} tokens"
        )
    return lookup.key


def _verify(settings: Settings, token: str, key: Any, algorithm: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.asap_pub_keys_auds,
            leeway=LEEWAY_S,
            options={"require": ["exp", "aud"], "enforce_minimum_key_length": True},
        )
    except jwt.ExpiredSignatureError:
        raise AccessRefused("token expired") from None
    except jwt.ImmatureSignatureError:
        raise AccessRefused("token not yet valid (nbf or iat in the future)") from None
    except jwt.InvalidAudienceError:
        raise AccessRefused("token audience not accepted") from None
    except jwt.MissingRequiredClaimError as error:
        raise AccessRefused(f"malformed token: no {error.claim} claim") from None
    except jwt.InvalidSignatureError:
        raise AccessRefused("bad token signature") from None
    except jwt.InvalidKeyError:
        raise AccessRefused("the signing key is too weak to be trusted") from None
    except jwt.InvalidTokenError as error:
        # pyjwt's messages name the claim at fault, never the token itself.
        raise AccessRefused(f"malformed token: {error}") from None
    _check_lifetime(claims, settings.asap_max_token_lifetime_s)
    return claims


def _check_lifetime(claims: Mapping[str, Any], max_lifetime_s: int) -> None:
    """`exp - iat`, or `exp - now` (with the clock-skew leeway) for tokens that carry no iat."""
    issued = int(claims["iat"]) if "iat" in claims else int(time.time()) + LEEWAY_S
    lifetime = int(claims["exp"]) - issued
    if lifetime > max_lifetime_s:
        raise AccessRefused(f"token lifetime exceeds {max_lifetime_s} s (ASAP_MAX_TOKEN_LIFETIME_S)")


def _check_meeting(claims: Mapping[str, Any], meeting_id: str) -> None:
    for name in MEETING_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if value != meeting_id and not (name == "room" and value == ANY_ROOM):
            raise AccessRefused(
                f"token is not valid for meeting {_shown(meeting_id)} (its {name} claim differs)"
            )


def _shown(value: object) -> str:
    """A header value fit for a reason: printable, bounded (it comes from the client)."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= MAX_KID_IN_REASON else text[:MAX_KID_IN_REASON] + "…"

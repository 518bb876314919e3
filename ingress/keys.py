"""Where token signing keys come from (SPEC §1): public keys by `kid`, fetched once and cached.

A key lives at `{ASAP_PUB_KEYS_REPO_URL}/{folder}/{sha256_hex(kid)}.pem` for the main folder, then
the fallback folder; `file:///path` repositories are local folders named the same way. Lookups
never block the event loop, concurrent lookups of one kid share one fetch, and misses are
remembered briefly so that a bad kid cannot hammer the key server.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

PublicKey = RSAPublicKey | EllipticCurvePublicKey
FETCH_TIMEOUT_S = 5.0
KEY_TTL_S = 3600.0
MISS_TTL_S = 60.0
MAX_CACHED_KIDS = 1000
NOT_FOUND_STATUSES = {403, 404}
"""Object stores (S3 and friends) answer 403 for a key that does not exist."""


class Outcome(enum.Enum):
    FOUND = "found"
    NOT_FOUND = "not found"
    UNAVAILABLE = "unavailable"
    """The source failed (timeout, 5xx, unreadable file, not a public key): maybe later."""


@dataclass(frozen=True)
class KeyLookup:
    outcome: Outcome
    key: PublicKey | None = None


NOT_FOUND = KeyLookup(Outcome.NOT_FOUND)
UNAVAILABLE = KeyLookup(Outcome.UNAVAILABLE)


def key_file_name(kid: str) -> str:
    return hashlib.sha256(kid.encode("utf-8")).hexdigest() + ".pem"


class TtlCache:
    """At most `max_entries` values, each forgotten `ttl_s` after it was stored (least recent first)."""

    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[str, tuple[float, KeyLookup]] = OrderedDict()
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock

    def get(self, name: str) -> KeyLookup | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[name]
            return None
        self._entries.move_to_end(name)
        return value

    def put(self, name: str, value: KeyLookup) -> None:
        self._entries[name] = (self._clock() + self._ttl_s, value)
        self._entries.move_to_end(name)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class KeyStore:
    """Public keys by kid. Found keys and misses are cached apart, so floods of made-up kids
    cannot evict the keys in use."""

    def __init__(
        self,
        repo_url: str,
        folders: Sequence[str | None],
        client: httpx.AsyncClient | None = None,
        *,
        key_ttl_s: float = KEY_TTL_S,
        miss_ttl_s: float = MISS_TTL_S,
        max_entries: int = MAX_CACHED_KIDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(repo_url)
        if parts.scheme not in ("http", "https", "file"):
            raise ValueError(f"the key repository must be an http(s):// or file:// URL, got {repo_url!r}")
        self._local_root = Path(unquote(parts.path)) if parts.scheme == "file" else None
        self._repo_url = repo_url.rstrip("/")
        self._folders = [folder.strip("/") for folder in folders if folder and folder.strip("/")] or [""]
        self._client = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        self._found = TtlCache(max_entries, key_ttl_s, clock)
        self._missed = TtlCache(max_entries, miss_ttl_s, clock)
        self._in_flight: dict[str, asyncio.Task[KeyLookup]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore | None:
        """None when no key repository is configured; a bad URL fails naming the variable."""
        if not settings.asap_pub_keys_repo_url:
            return None
        folders = [settings.asap_pub_keys_folder, settings.asap_pub_keys_fallback_folder]
        try:
            return cls(settings.asap_pub_keys_repo_url, folders)
        except ValueError as error:
            raise SettingsError(f"ASAP_PUB_KEYS_REPO_URL: {error}") from None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def lookup(self, kid: str) -> KeyLookup:
        name = key_file_name(kid)
        cached = self._found.get(name) or self._missed.get(name)
        if cached is not None:
            return cached
        task = self._in_flight.get(name)
        if task is None:
            task = asyncio.create_task(self._load(name))
            self._in_flight[name] = task
            task.add_done_callback(lambda _: self._in_flight.pop(name, None))
        # Shielded: a client hanging up mid-fetch must not cancel the fetch others wait on.
        return await asyncio.shield(task)

    async def _load(self, name: str) -> KeyLookup:
        result = NOT_FOUND
        for folder in self._folders:
            found = await self._read(folder, name)
            if found.outcome is Outcome.FOUND:
                self._found.put(name, found)
                return found
            if found.outcome is Outcome.UNAVAILABLE:
                result = UNAVAILABLE
        self._missed.put(name, result)
        return result

    async def _read(self, folder: str, name: str) -> KeyLookup:
        if self._local_root is not None:
            path = self._local_root / folder / name
            try:
                pem = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                return NOT_FOUND
            except OSError as error:
                logger.warning("cannot read public key %s: %s", path, error)
                return UNAVAILABLE
            return _parse(pem, str(path))
        url = "/".join(part for part in (self._repo_url, folder, name) if part)
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as error:
            logger.warning("cannot fetch public key %s: %s", url, type(error).__name__)
            return UNAVAILABLE
        if response.status_code in NOT_FOUND_STATUSES:
            return NOT_FOUND
        if response.status_code != httpx.codes.OK:
            logger.warning("cannot fetch public key %s: HTTP %d", url, response.status_code)
            return UNAVAILABLE
        return _parse(response.content, url)


def _parse(pem: bytes, where: str) -> KeyLookup:
    try:
        key = load_pem_public_key(pem)
    except ValueError:
        logger.warning("%s is not a PEM public key", where)
        return UNAVAILABLE
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        logger.warning("%s holds a %s key; only RSA and EC keys sign tokens", where, type(key).__name__)
        return UNAVAILABLE
    return KeyLookup(Outcome.FOUND, key)

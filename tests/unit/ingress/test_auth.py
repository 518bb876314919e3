"""Token verification (SPEC §1) with real keys, real signatures and keys served from a folder."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ingress.auth import AccessRefused, Grant, check_access
from ingress.keys import KeyStore, Outcome, key_file_name
from service.settings import Settings

pytestmark = pytest.mark.unit

AUDIENCE = "jitsi"
MEETING = "standup"
RSA_KID = "jitsi/rsa-1"
EC_KID = "jitsi/ec-1"
FALLBACK_KID = "legacy/rsa-old"
UNKNOWN_KID = "jitsi/never-published"
SHARED_SECRET = "a-shared-secret-of-at-least-32-bytes!"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
FALLBACK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {"aud": AUDIENCE, "iat": now, "exp": now + 600, "sub": "bridge"}
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def sign(payload: dict[str, Any], key: Any = RSA_KEY, algorithm: str = "RS256", kid: str = RSA_KID) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def forge(header: dict[str, Any], payload: dict[str, Any], signature: Callable[[bytes], bytes]) -> str:
    """A token built by hand, the way an attacker would (pyjwt refuses to sign these)."""

    def encode(part: bytes) -> bytes:
        return base64.urlsafe_b64encode(part).rstrip(b"=")

    signing_input = encode(json.dumps(header).encode()) + b"." + encode(json.dumps(payload).encode())
    return (signing_input + b"." + encode(signature(signing_input))).decode()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    (tmp_path / "main").mkdir()
    (tmp_path / "fallback").mkdir()
    (tmp_path / "main" / key_file_name(RSA_KID)).write_bytes(public_pem(RSA_KEY))
    (tmp_path / "main" / key_file_name(EC_KID)).write_bytes(public_pem(EC_KEY))
    (tmp_path / "fallback" / key_file_name(FALLBACK_KID)).write_bytes(public_pem(FALLBACK_KEY))
    return tmp_path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each key file was read (attempts included), by `folder/name`."""
    counter: Counter[str] = Counter()
    original = Path.read_bytes

    def counting(path: Path) -> bytes:
        counter[f"{path.parent.name}/{path.name}"] += 1
        return original(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    return counter


def auth_settings(keys_dir: Path | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bypass_authorization": False,
        "asap_pub_keys_repo_url": keys_dir.as_uri() if keys_dir else None,
        "asap_pub_keys_folder": "main",
        "asap_pub_keys_fallback_folder": "fallback",
        "asap_pub_keys_auds": [AUDIENCE, "other-service"],
        "asap_max_token_lifetime_s": 3600,
        "asap_shared_secret": None,
    }
    values.update(overrides)
    return Settings(**values)


async def attempt(
    settings: Settings,
    *tokens: tuple[str | None, str | None],
    meeting: str = MEETING,
    store: KeyStore | None = None,
) -> list[Grant | AccessRefused]:
    """check_access for each (header token, query token), sharing one key store as a process does."""
    keys = store or KeyStore.from_settings(settings)
    outcomes: list[Grant | AccessRefused] = []
    try:
        for header_token, query_token in tokens:
            headers = {"authorization": f"Bearer {header_token}"} if header_token else {}
            query = {"auth_token": query_token} if query_token else {}
            try:
                outcomes.append(await check_access(settings, keys, meeting, headers, query))
            except AccessRefused as refusal:
                outcomes.append(refusal)
    finally:
        if keys is not None:
            await keys.aclose()
    return outcomes


def accepted(settings: Settings, token: str | None, query: str | None = None, **options: Any) -> Grant:
    (outcome,) = asyncio.run(attempt(settings, (token, query), **options))
    assert isinstance(outcome, Grant), outcome
    return outcome


def refused(settings: Settings, token: str | None, query: str | None = None, **options: Any) -> AccessRefused:
    (outcome,) = asyncio.run(attempt(settings, (token, query), **options))
    assert isinstance(outcome, AccessRefused), f"accepted: {outcome}"
    for secret in (token, query):
        if secret:
            assert secret not in outcome.reason
    return outcome


# ---- accepted ---------------------------------------------------------------------------------


def test_a_valid_rs256_token_is_accepted_with_its_claims(keys_dir: Path) -> None:
    grant = accepted(auth_settings(keys_dir), sign(claims(room=MEETING)))
    assert grant.kid == RSA_KID
    assert grant.claims["sub"] == "bridge" and grant.claims["room"] == MEETING


def test_a_valid_es256_token_is_accepted(keys_dir: Path) -> None:
    grant = accepted(auth_settings(keys_dir), sign(claims(), EC_KEY, "ES256", EC_KID))
    assert grant.kid == EC_KID


def test_any_of_the_accepted_audiences_will_do(keys_dir: Path) -> None:
    accepted(auth_settings(keys_dir), sign(claims(aud=["unrelated", "other-service"])))


def test_the_fallback_folder_is_tried_after_the_main_one(keys_dir: Path, reads: Counter[str]) -> None:
    accepted(auth_settings(keys_dir), sign(claims(), FALLBACK_KEY, kid=FALLBACK_KID))
    name = key_file_name(FALLBACK_KID)
    assert reads == {f"main/{name}": 1, f"fallback/{name}": 1}


def test_bypass_accepts_anything(keys_dir: Path) -> None:
    settings = auth_settings(None, bypass_authorization=True, asap_pub_keys_auds=[])
    assert accepted(settings, None) == Grant()
    assert accepted(settings, "not-a-token", "neither") == Grant()


def test_a_token_in_the_query_string_is_accepted(keys_dir: Path) -> None:
    accepted(auth_settings(keys_dir), None, sign(claims()))


def test_the_header_token_wins_over_the_query_token(keys_dir: Path) -> None:
    settings = auth_settings(keys_dir)
    accepted(settings, sign(claims()), "garbage")
    assert refused(settings, "garbage", sign(claims())).reason.startswith("malformed token")


def test_room_wildcard_and_matching_meeting_id_claims_are_accepted(keys_dir: Path) -> None:
    settings = auth_settings(keys_dir)
    accepted(settings, sign(claims(room="*")))
    accepted(settings, sign(claims(meeting_id=MEETING)))


def test_tokens_without_iat_are_accepted_when_they_expire_soon_enough(keys_dir: Path) -> None:
    accepted(auth_settings(keys_dir), sign(claims(iat=None, exp=int(time.time()) + 3000)))


def test_hs256_works_only_with_the_shared_secret_for_kids_without_a_public_key(keys_dir: Path) -> None:
    settings = auth_settings(keys_dir, asap_shared_secret=SHARED_SECRET)
    accepted(settings, sign(claims(), SHARED_SECRET, "HS256", "internal/service"))
    reason = refused(settings, sign(claims(), SHARED_SECRET, "HS256", RSA_KID)).reason
    assert reason.startswith("unsupported algorithm HS256") and "public key" in reason


# ---- refused ----------------------------------------------------------------------------------


def test_an_expired_token_is_refused(keys_dir: Path) -> None:
    now = int(time.time())
    refusal = refused(auth_settings(keys_dir), sign(claims(iat=now - 900, exp=now - 300)))
    assert refusal.reason == "token expired"
    assert refusal.close_code == 1008


def test_a_token_not_yet_valid_is_refused(keys_dir: Path) -> None:
    now = int(time.time())
    reason = refused(auth_settings(keys_dir), sign(claims(nbf=now + 300, exp=now + 900))).reason
    assert reason.startswith("token not yet valid")


def test_a_token_issued_in_the_future_is_refused(keys_dir: Path) -> None:
    now = int(time.time())
    reason = refused(auth_settings(keys_dir), sign(claims(iat=now + 300, exp=now + 900))).reason
    assert reason.startswith("token not yet valid")


def test_clock_skew_within_the_leeway_is_tolerated(keys_dir: Path) -> None:
    now = int(time.time())
    accepted(auth_settings(keys_dir), sign(claims(nbf=now + 10, iat=now + 10, exp=now + 600)))
    accepted(auth_settings(keys_dir), sign(claims(iat=now - 600, exp=now - 10)))


def test_a_token_for_another_audience_is_refused(keys_dir: Path) -> None:
    assert refused(auth_settings(keys_dir), sign(claims(aud="someone-else"))).reason == (
        "token audience not accepted"
    )


def test_a_token_without_exp_is_refused(keys_dir: Path) -> None:
    assert refused(auth_settings(keys_dir), sign(claims(exp=None))).reason == "malformed token: no exp claim"


def test_a_token_living_longer_than_the_maximum_is_refused(keys_dir: Path) -> None:
    now = int(time.time())
    settings = auth_settings(keys_dir, asap_max_token_lifetime_s=1800)
    assert refused(settings, sign(claims(iat=now, exp=now + 1801))).reason.startswith(
        "token lifetime exceeds 1800 s"
    )
    # Without iat the remaining lifetime counts.
    assert refused(settings, sign(claims(iat=None, exp=now + 7200))).reason.startswith(
        "token lifetime exceeds 1800 s"
    )
    accepted(settings, sign(claims(iat=now, exp=now + 1800)))


def test_alg_none_is_refused(keys_dir: Path) -> None:
    token = forge({"alg": "none", "typ": "JWT", "kid": RSA_KID}, claims(), lambda _: b"")
    assert refused(auth_settings(keys_dir), token).reason.startswith("unsupported algorithm none")


def test_hs256_signed_with_the_public_key_is_refused(keys_dir: Path) -> None:
    """The classic confusion attack: the public key PEM used as an HMAC secret."""
    pem = public_pem(RSA_KEY)
    token = forge(
        {"alg": "HS256", "typ": "JWT", "kid": RSA_KID},
        claims(),
        lambda signing_input: hmac.new(pem, signing_input, hashlib.sha256).digest(),
    )
    assert refused(auth_settings(keys_dir), token).reason.startswith("unsupported algorithm HS256")
    with_secret = auth_settings(keys_dir, asap_shared_secret=SHARED_SECRET)
    assert refused(with_secret, token).reason.startswith("unsupported algorithm HS256")


def test_an_algorithm_other_than_the_keys_is_refused(keys_dir: Path) -> None:
    token = sign(claims(), EC_KEY, "ES256", RSA_KID)
    assert refused(auth_settings(keys_dir), token).reason == (
        f"unsupported algorithm ES256 for kid {RSA_KID}: its key signs RS256 tokens"
    )


def test_a_token_signed_by_another_key_is_refused(keys_dir: Path) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(auth_settings(keys_dir), sign(claims(), impostor)).reason == "bad token signature"


def test_a_weak_key_is_not_trusted(keys_dir: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (keys_dir / "main" / key_file_name("weak")).write_bytes(public_pem(weak))
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        token = sign(claims(), weak, kid="weak")
    assert refused(auth_settings(keys_dir), token).reason.startswith("the signing key is too weak")


def test_an_unknown_kid_is_refused_and_remembered(keys_dir: Path, reads: Counter[str]) -> None:
    settings = auth_settings(keys_dir)
    token = sign(claims(), kid=UNKNOWN_KID)
    outcomes = asyncio.run(attempt(settings, *[(token, None)] * 5))
    for outcome in outcomes:
        assert isinstance(outcome, AccessRefused)
        assert outcome.reason == f"unknown signing key (kid {UNKNOWN_KID})"
    # Both folders were looked in once; the four later attempts hit the negative cache.
    name = key_file_name(UNKNOWN_KID)
    assert reads == {f"main/{name}": 1, f"fallback/{name}": 1}


def test_meeting_claims_must_name_this_meeting(keys_dir: Path) -> None:
    settings = auth_settings(keys_dir)
    reason = refused(settings, sign(claims(room="another-meeting"))).reason
    assert reason == f"token is not valid for meeting {MEETING} (its room claim differs)"
    assert "meeting_id claim" in refused(settings, sign(claims(meeting_id="*"))).reason


def test_missing_and_malformed_tokens_are_refused(keys_dir: Path) -> None:
    settings = auth_settings(keys_dir)
    assert refused(settings, None).reason.startswith("missing token")
    assert refused(settings, "abc.def").reason.startswith("malformed token")
    no_kid = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert refused(settings, no_kid).reason == "malformed token: its header has no kid"


def test_a_server_without_key_source_refuses_every_token(keys_dir: Path) -> None:
    refusal = refused(auth_settings(None), sign(claims()))
    assert "ASAP_PUB_KEYS_REPO_URL" in refusal.reason


def test_a_server_without_audiences_says_so(keys_dir: Path) -> None:
    reason = refused(auth_settings(keys_dir, asap_pub_keys_auds=[]), sign(claims())).reason
    assert "no audiences configured" in reason and "ASAP_PUB_KEYS_AUDS" in reason


def test_long_or_odd_kids_are_shown_shortened_in_reasons(keys_dir: Path) -> None:
    reason = refused(auth_settings(keys_dir), sign(claims(), kid="k\n" + "x" * 500)).reason
    assert "\n" not in reason and len(reason) < 123


# ---- the key store ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_lookups_of_one_kid_share_one_read(keys_dir: Path, reads: Counter[str]) -> None:
    async def main() -> list[Outcome]:
        store = KeyStore(keys_dir.as_uri(), ["main", "fallback"])
        try:
            lookups = await asyncio.gather(*(store.lookup(RSA_KID) for _ in range(20)))
        finally:
            await store.aclose()
        return [lookup.outcome for lookup in lookups]

    assert asyncio.run(main()) == [Outcome.FOUND] * 20
    assert reads == {f"main/{key_file_name(RSA_KID)}": 1}


def test_keys_and_misses_are_forgotten_after_their_ttl(keys_dir: Path, reads: Counter[str]) -> None:
    clock = FakeClock()

    async def main() -> None:
        store = KeyStore(keys_dir.as_uri(), ["main"], key_ttl_s=3600, miss_ttl_s=60, clock=clock)
        try:
            for _ in range(2):
                await store.lookup(RSA_KID)
                await store.lookup(UNKNOWN_KID)
            assert reads == {f"main/{key_file_name(RSA_KID)}": 1, f"main/{key_file_name(UNKNOWN_KID)}": 1}
            clock.now += 61  # the miss is forgotten, the key is not
            await store.lookup(RSA_KID)
            await store.lookup(UNKNOWN_KID)
            assert reads == {f"main/{key_file_name(RSA_KID)}": 1, f"main/{key_file_name(UNKNOWN_KID)}": 2}
            clock.now += 3600
            await store.lookup(RSA_KID)
            assert reads[f"main/{key_file_name(RSA_KID)}"] == 2
        finally:
            await store.aclose()

    asyncio.run(main())


def test_the_cache_holds_a_bounded_number_of_kids(keys_dir: Path, reads: Counter[str]) -> None:
    async def main() -> None:
        store = KeyStore(keys_dir.as_uri(), ["main"], max_entries=1)
        try:
            await store.lookup(RSA_KID)
            await store.lookup(EC_KID)  # evicts RSA_KID
            await store.lookup(RSA_KID)
        finally:
            await store.aclose()

    asyncio.run(main())
    assert reads[f"main/{key_file_name(RSA_KID)}"] == 2


def key_server(files: dict[str, bytes], requests: list[str], status: int | None = None) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if status is not None:
            return httpx.Response(status)
        body = files.get(request.url.path)
        return httpx.Response(200, content=body) if body is not None else httpx.Response(404)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def test_keys_are_fetched_over_http_from_the_folder_then_the_fallback(keys_dir: Path) -> None:
    requests: list[str] = []
    files = {f"/asap/fallback/{key_file_name(FALLBACK_KID)}": public_pem(FALLBACK_KEY)}
    store = KeyStore("https://keys.example/asap/", ["main", "/fallback/"], key_server(files, requests))
    settings = auth_settings(keys_dir)

    accepted(settings, sign(claims(), FALLBACK_KEY, kid=FALLBACK_KID), store=store)

    assert requests == [
        f"/asap/main/{key_file_name(FALLBACK_KID)}",
        f"/asap/fallback/{key_file_name(FALLBACK_KID)}",
    ]


def test_a_failing_key_server_asks_clients_to_come_back_later(keys_dir: Path) -> None:
    requests: list[str] = []
    store = KeyStore("https://keys.example", ["main"], key_server({}, requests, status=503))
    token = sign(claims())
    outcomes = asyncio.run(attempt(auth_settings(keys_dir), (token, None), (token, None), store=store))

    for outcome in outcomes:
        assert isinstance(outcome, AccessRefused)
        assert outcome.close_code == 1013
        assert outcome.reason == f"signing key (kid {RSA_KID}) could not be fetched; try again later"
    assert len(requests) == 1


def test_a_file_that_is_not_a_public_key_is_not_trusted(keys_dir: Path) -> None:
    (keys_dir / "main" / key_file_name("junk")).write_text("not a key")
    refusal = refused(auth_settings(keys_dir), sign(claims(), kid="junk"))
    assert refusal.close_code == 1013


def test_a_key_repository_that_is_not_a_url_fails_at_start_up() -> None:
    from service.settings import SettingsError

    with pytest.raises(SettingsError, match="ASAP_PUB_KEYS_REPO_URL"):
        KeyStore.from_settings(auth_settings(None, asap_pub_keys_repo_url="/etc/keys"))


def test_a_short_shared_secret_fails_at_start_up_naming_the_variable() -> None:
    from service.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="ASAP_SHARED_SECRET"):
        load_settings(asap_shared_secret="too-short")
    assert load_settings(asap_shared_secret="").asap_shared_secret is None
    assert SHARED_SECRET not in repr(load_settings(asap_shared_secret=SHARED_SECRET))

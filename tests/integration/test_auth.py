"""Authorization end to end: a real key server on loopback, an ingress that verifies tokens, real
streams. Valid tokens get transcripts; bad ones are refused (1008 and a reason) before any audio
is read; no token ever reaches the ingress log."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.scoring import error_rate
from commands.launcher import free_port
from demos.client import MeetingResult, stream_meeting
from demos.realtime_client import RealtimeResult, stream_realtime
from ingress.keys import key_file_name
from tests.integration.conftest import ARTIFACTS, STREAM_TIMEOUT_S, TEST_SPEED, Service

pytestmark = pytest.mark.integration

INGRESS = "ingress-auth"
AUDIENCE = "streaming-whisper"
KID = "jitsi/integration-1"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class LockedIngress:
    base: str
    signing_key: rsa.RSAPrivateKey
    issued: list[str] = field(default_factory=list)
    """Every token handed out, to look for in the log afterwards."""

    def token(self, kid: str = KID, **changes: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"aud": AUDIENCE, "iat": now, "exp": now + 600, "sub": "it", **changes}
        token = jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": kid})
        self.issued.append(token)
        return token


@pytest.fixture(scope="module")
def key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """An HTTP server on loopback serving `{folder}/{sha256(kid)}.pem`, as a real key repository does."""
    root = tmp_path_factory.mktemp("asap-keys")
    (root / "server").mkdir()
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (root / "server" / key_file_name(KID)).write_bytes(pem)
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", signing_key
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def locked(service: Service, key_server: tuple[str, rsa.RSAPrivateKey]) -> Iterator[LockedIngress]:
    url, signing_key = key_server
    env = {
        "BYPASS_AUTHORIZATION": "0",
        "ASAP_PUB_KEYS_REPO_URL": url,
        "ASAP_PUB_KEYS_FOLDER": "server",
        "ASAP_PUB_KEYS_AUDS": f"{AUDIENCE},another",
    }
    base = service.stack.start_ingress(INGRESS, free_port(), env)
    try:
        yield LockedIngress(base, signing_key)
    finally:
        service.stack.stop_process(INGRESS)


def assert_refused(result: MeetingResult, reason: str) -> None:
    assert result.close_code == 1008, (result.close_code, result.close_reason)
    assert result.close_reason.startswith(reason), result.close_reason
    assert [error["code"] for error in result.errors()] == [1008]
    assert not result.of_type("final") and not result.of_type("interim")


def test_a_valid_bearer_token_streams_and_gets_finals(
    service: Service, locked: LockedIngress, speech: Any, reference: Any
) -> None:
    token = locked.token(room="auth-ok")
    result = service.stream("auth-ok", [("jfk", speech("jfk_ask_not"))], base=locked.base, token=token)

    assert result.closed_normally, (result.close_code, result.close_reason)
    assert error_rate(reference("jfk_ask_not"), result.transcript("jfk")) <= 0.10


def test_a_token_in_the_query_string_works_too(service: Service, locked: LockedIngress, speech: Any) -> None:
    url = service.url("auth-query", base=locked.base) + "?auth_token=" + locked.token()

    async def bounded() -> MeetingResult:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            return await stream_meeting(url, [("jfk", speech("jfk_ask_not"))], speed=TEST_SPEED)

    result = asyncio.run(bounded())

    assert result.closed_normally, (result.close_code, result.close_reason)
    assert result.finals("jfk")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "token expired"),
        ("wrong audience", "token audience not accepted"),
        ("unknown kid", "unknown signing key (kid jitsi/nobody)"),
        ("other meeting", "token is not valid for meeting auth-refused"),
        ("no token", "missing token"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason_and_no_transcript(
    service: Service, locked: LockedIngress, speech: Any, case: str, reason: str
) -> None:
    now = int(time.time())
    token = {
        "expired": lambda: locked.token(iat=now - 1200, exp=now - 600),
        "wrong audience": lambda: locked.token(aud="someone-else"),
        "unknown kid": lambda: locked.token(kid="jitsi/nobody"),
        "other meeting": lambda: locked.token(room="another-meeting"),
        "no token": lambda: None,
    }[case]()

    result = service.stream("auth-refused", [("jfk", speech("jfk_ask_not"))], base=locked.base, token=token)

    assert_refused(result, reason)


def test_the_realtime_route_takes_the_sdks_bearer_key_as_the_token(
    service: Service, locked: LockedIngress, speech: Any, reference: Any
) -> None:
    """The openai SDK sends its API key as `Authorization: Bearer`: a JWT there opens a session
    whose id (`?session_id=`) the token's room claim names."""
    token = locked.token(room="auth-realtime")

    async def bounded() -> RealtimeResult:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            pcm = speech("jfk_ask_not")
            return await stream_realtime(
                locked.base, pcm, speed=TEST_SPEED, token=token, session_id="auth-realtime"
            )

    result = asyncio.run(bounded())

    assert not result.errors()
    assert error_rate(reference("jfk_ask_not"), result.transcript()) <= 0.10


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "missing token"),
        ("&session_id=elsewhere&auth_token=ROOM", "token is not valid for meeting elsewhere"),
    ],
)
def test_the_realtime_route_refuses_bad_tokens_with_an_error_event(
    locked: LockedIngress, query: str, reason: str
) -> None:
    url = locked.base.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    url += query.replace("ROOM", locked.token(room="auth-realtime"))

    async def refused() -> tuple[list[dict[str, Any]], int | None]:
        events = []
        async with connect(url) as socket:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    events.append(json.loads(await socket.recv()))
            return events, socket.close_code

    events, close_code = asyncio.run(refused())

    assert close_code == 1008
    assert [event["type"] for event in events] == ["error"]
    assert events[0]["error"]["message"].startswith(reason)
    assert events[0]["error"]["code"] == "policy_violation"


def test_no_token_reaches_the_ingress_log(service: Service, locked: LockedIngress, speech: Any) -> None:
    """Last in this module: it stops the ingress so that its log is complete."""
    token = locked.token(aud="someone-else")
    url = service.url("auth-log", base=locked.base) + "?auth_token=" + token
    result = asyncio.run(stream_meeting(url, [("jfk", speech("jfk_ask_not")[:32_000])], speed=None))
    assert_refused(result, "token audience not accepted")
    service.stack.stop_process(INGRESS)

    log = (ARTIFACTS / "logs" / f"{INGRESS}.log").read_text(encoding="utf-8", errors="replace")
    assert "connection refused: token audience not accepted" in log
    assert "auth_token=[redacted]" in log
    for issued in locked.issued:
        _header, payload, signature = issued.split(".")
        assert issued not in log
        assert signature not in log and payload not in log

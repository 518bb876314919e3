"""An independent battery against `streaming-whisper run` (what `make run` starts), with tokens
required and keys read from a local folder (ASAP_PUB_KEYS_REPO_URL=file://…): forged, stale and
misdirected tokens and malformed frames are each refused with a clear reason while a meeting beside
them keeps its transcript, and no token appears anywhere in the service's output."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bench.scoring import error_rate
from commands.launcher import free_port
from demos.client import MeetingResult, stream_meeting
from ingress.keys import key_file_name
from tests.integration.conftest import STREAM_TIMEOUT_S, TEST_SPEED
from tests.integration.test_bad_input import audio_frames, bad_frames, merged, open_and_converse
from tests.integration.test_run_command import READY_LINE, START_TIMEOUT_S, Output

pytestmark = pytest.mark.integration

AUDIENCE = "meetings"
KID = "battery/es256-1"
MEETING = "battery"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(signature)}"


@dataclass
class Issuer:
    key: ec.EllipticCurvePrivateKey
    public_pem: bytes
    issued: list[str] = field(default_factory=list)

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"aud": AUDIENCE, "iat": now, "exp": now + 600, "sub": "battery", **changes}

    def remember(self, token: str) -> str:
        self.issued.append(token)
        return token

    def token(self, kid: str = KID, key: Any = None, algorithm: str = "ES256", **changes: Any) -> str:
        signed = jwt.encode(
            self.claims(**changes), key or self.key, algorithm=algorithm, headers={"kid": kid}
        )
        return self.remember(signed)

    def without(self, claim: str) -> str:
        claims = self.claims()
        del claims[claim]
        return self.remember(jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": KID}))

    def alg_none(self) -> str:
        return self.remember(unsigned_token({"alg": "none", "kid": KID, "typ": "JWT"}, self.claims()))

    def hs256_with_public_key(self) -> str:
        """The classic key-confusion forgery: HMAC keyed with the public key the server holds."""
        unsigned = unsigned_token({"alg": "HS256", "kid": KID, "typ": "JWT"}, self.claims())
        signing_input = unsigned.rsplit(".", 1)[0]
        signature = hmac.new(self.public_pem, signing_input.encode(), hashlib.sha256).digest()
        return self.remember(f"{signing_input}.{b64url(signature)}")


@dataclass
class RunningService:
    base_ws: str
    output: Output


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Issuer, Path]:
    folder = tmp_path_factory.mktemp("keys")
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "asap").mkdir()
    (folder / "asap" / key_file_name(KID)).write_bytes(public_pem)
    return Issuer(key, public_pem), folder


@pytest.fixture(scope="module")
def running(issuer: tuple[Issuer, Path]) -> Iterator[tuple[RunningService, subprocess.Popen[bytes]]]:
    _, key_folder = issuer
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    env.update(
        PORT=str(port),
        BYPASS_AUTHORIZATION="0",
        ASAP_PUB_KEYS_REPO_URL=key_folder.as_uri(),
        ASAP_PUB_KEYS_FOLDER="asap",
        ASAP_PUB_KEYS_AUDS=AUDIENCE,
        LOG_LEVEL="DEBUG",  # the most talkative setting: still no token may appear
    )
    command = [sys.executable, "-m", "commands.cli", "run"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        output = Output(process, READY_LINE.format(port=port))
        try:
            assert output.seen.wait(START_TIMEOUT_S), output.text()
            yield RunningService(f"ws://127.0.0.1:{port}/streaming-whisper/ws", output), process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


def bad_tokens(issuer: Issuer) -> list[tuple[str, str | None, str]]:
    """(case, token, the start of the reason the client must get)."""
    now = int(time.time())
    stranger = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [
        ("no token", None, "missing token"),
        ("not a JWT", issuer.remember("not-a-jwt"), "malformed token: not a JWT"),
        ("alg none", issuer.alg_none(), "unsupported algorithm none"),
        ("HS256 keyed with the public key", issuer.hs256_with_public_key(), "unsupported algorithm HS256"),
        (
            "RS256 for an ES256 kid",
            issuer.token(key=rsa_key, algorithm="RS256"),
            "unsupported algorithm RS256",
        ),
        ("signed by another key", issuer.token(key=stranger), "bad token signature"),
        ("unknown kid", issuer.token(kid="battery/nobody"), "unknown signing key (kid battery/nobody)"),
        ("expired", issuer.token(iat=now - 1200, exp=now - 600), "token expired"),
        ("not yet valid", issuer.token(nbf=now + 600), "token not yet valid"),
        ("wrong audience", issuer.token(aud="someone-else"), "token audience not accepted"),
        ("no exp", issuer.without("exp"), "malformed token: no exp claim"),
        ("lives too long", issuer.token(exp=now + 7200), "token lifetime exceeds 3600 s"),
        ("another meeting", issuer.token(room="elsewhere"), "token is not valid for meeting battery"),
    ]


def test_bad_tokens_and_frames_are_refused_while_a_meeting_beside_them_goes_on(
    running: tuple[RunningService, subprocess.Popen[bytes]],
    issuer: tuple[Issuer, Path],
    speech: Any,
    reference: Any,
) -> None:
    service, process = running
    tokens, _ = issuer
    jfk = speech("jfk_ask_not")
    url = f"{service.base_ws}/{MEETING}"
    refusals = bad_tokens(tokens)
    cases = bad_frames()
    good = audio_frames("jfk", jfk)
    dirty_frames = merged(good, [(good[n][0] + 0.05, frame) for n, (frame, *_) in enumerate(cases)])

    async def battery() -> tuple[MeetingResult, MeetingResult, list[MeetingResult]]:
        meeting = stream_meeting(url, [("speaker", jfk)], token=tokens.token(), speed=TEST_SPEED)
        # Malformed frames on a socket whose token is good (in the query string this time).
        dirty = open_and_converse(f"{url}-frames?auth_token={tokens.token()}", dirty_frames)
        refused = [
            stream_meeting(url, [("intruder", jfk[:64_000])], token=token, speed=TEST_SPEED)
            for _, token, _ in refusals
        ]
        gathered = await asyncio.gather(meeting, dirty, *refused)
        return gathered[0], gathered[1], list(gathered[2:])

    meeting, dirty, refused = asyncio.run(asyncio.wait_for(battery(), STREAM_TIMEOUT_S))

    for (case, _, reason), result in zip(refusals, refused, strict=True):
        assert result.close_code == 1008, (case, result.close_code, result.close_reason)
        assert result.close_reason.startswith(reason), (case, result.close_reason)
        assert [e["code"] for e in result.errors()] == [1008], case
        assert not result.of_type("interim") and not result.of_type("final"), case
    for _frame, code, text, participant in cases:
        found = [
            e
            for e in dirty.errors()
            if e["code"] == code and text in e["message"] and e.get("participant_id") == participant
        ]
        assert found, (code, text, dirty.errors())
    assert dirty.closed_normally, (dirty.close_code, dirty.close_reason)
    assert error_rate(reference("jfk_ask_not"), dirty.transcript("jfk")) <= 0.10
    assert meeting.closed_normally and not meeting.errors()
    assert error_rate(reference("jfk_ask_not"), meeting.transcript("speaker")) <= 0.10

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    text = service.output.text()
    assert "connection refused: token expired" in text  # the refusals were logged...
    for token in tokens.issued:
        signature = token.rsplit(".", 1)[-1]
        assert token not in text  # ...but never the token, not even at DEBUG
        assert not signature or signature not in text

"""What the ingress and the workers accept from each other (no Redis, no model)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from service.contracts import DecoderHints, ErrorCode, WindowRequest, WindowResult, prefix_head

pytestmark = pytest.mark.unit


def request(**fields: object) -> WindowRequest:
    audio = [{"key": "k", "start": 0, "end": 32000}]
    base = {"request_id": "r1", "audio": audio, "reply_to": "s", "language": "en"}
    return WindowRequest.model_validate(base | fields)


def test_a_prefix_tail_is_the_prefix_s_last_words_at_a_time_in_the_window() -> None:
    window = request(
        prefix="And so, my fellow Americans,", prefix_tail="fellow Americans,", prefix_tail_s=1.3
    )
    assert (window.prefix_tail, window.prefix_tail_s) == ("fellow Americans,", 1.3)
    assert request(prefix="Yes.").prefix_tail == ""  # all of the prefix forced


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"prefix": "And so, my fellow Americans,", "prefix_tail": "my fellow"}, "does not end the prefix"),
        ({"prefix_tail": "Americans,"}, "does not end the prefix"),
        ({"prefix": "Yes.", "prefix_tail": "Yes.", "prefix_tail_s": -0.5}, "greater than or equal to 0"),
        ({"audio": []}, "at least 1 item"),
        ({"audio": [{"key": "k", "start": 2, "end": 2}]}, "not a range of whole samples"),
        ({"audio": [{"key": "k", "start": 0, "end": 3}]}, "not a range of whole samples"),
    ],
)
def test_a_bad_prefix_tail_or_audio_piece_is_refused(fields: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        request(**fields)


def test_a_request_carries_its_window_s_hints_flat_in_the_json_as_before() -> None:
    hints = DecoderHints(prompt="Hi.", prefix="And so, my fellow", prefix_tail="my fellow", prefix_tail_s=0.4)
    audio = [{"key": "k", "start": 0, "end": 32000}]
    sent = WindowRequest.model_validate(
        hints.model_dump() | {"request_id": "r1", "audio": audio, "reply_to": "s", "language": "en"}
    )
    fields = json.loads(sent.model_dump_json())

    assert set(fields) == {
        "request_id",
        "audio",
        "reply_to",
        "language",
        "detect_language",
        *DecoderHints.model_fields,
    }
    assert fields["prefix_tail_s"] == 0.4 and fields["prompt"] == "Hi."
    assert DecoderHints.model_validate(sent.model_dump(include=set(DecoderHints.model_fields))) == hints


def test_the_prefix_without_its_tail_is_what_comes_before_the_tail() -> None:
    assert (
        prefix_head("Ask not what your country can do for you.", "for you.")
        == "Ask not what your country can do"
    )
    assert prefix_head(" for you. ", "for you.") == ""
    with pytest.raises(ValueError, match="does not end the prefix"):
        prefix_head("Ask not what your country can do for you.", "your country")


def test_an_error_code_crosses_the_boundary_as_the_same_json_string() -> None:
    failed = WindowResult(request_id="r1", error_code=ErrorCode.AUDIO_EXPIRED, error_message="gone")

    text = failed.model_dump_json()

    assert '"error_code":"audio_expired"' in text
    back = WindowResult.model_validate_json(text)
    assert back.error_code is ErrorCode.AUDIO_EXPIRED and back.error_code == "audio_expired"
    assert WindowResult.model_validate_json('{"request_id": "r2"}').error_code is None


def test_an_unknown_error_code_is_refused() -> None:
    with pytest.raises(ValidationError, match="error_code"):
        WindowResult.model_validate_json('{"request_id": "r1", "error_code": "gremlins"}')

"""bench.window_cost refuses a context that leaves no new audio, before loading any model."""

from __future__ import annotations

import sys

import pytest

from bench import window_cost

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "args", [["--context", "9", "--seconds", "9"], ["--context", "0"], ["--repeats", "0"]]
)
def test_impossible_windows_are_refused_with_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["window_cost", *args])
    monkeypatch.setattr(window_cost, "read_pcm", lambda path: pytest.fail("read the file"))

    with pytest.raises(SystemExit) as exit_info:
        window_cost.main()

    assert exit_info.value.code == 2
    assert "--context" in capsys.readouterr().err

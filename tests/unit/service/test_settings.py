"""The one settings object: SPEC §4 names, their defaults, and start-up failures that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Device, Settings, SettingsError, load_settings

pytestmark = pytest.mark.unit

SPEC_DEFAULTS: dict[str, object] = {
    "WHISPER_MODEL_NAME": "tiny.en",
    "WHISPER_MODEL_PATH": None,
    "BEAM_SIZE": 1,
    "WHISPER_COMPUTE_TYPE": "int8",
    "WHISPER_DEVICE": Device.AUTO,
    "WHISPER_GPU_INDICES": [0],
    "WHISPER_RETURN_TRANSCRIBED_AUDIO": False,
    "WHISPER_MAX_CONNECTIONS": 100,
    "WHISPER_MIN_PROBABILITY": 0.7,
    "WHISPER_FLUSH_BUFFER_INTERVAL": 2000,
    "WHISPER_MAX_FINALS_IN_INITIAL_PROMPT": 2,
    "WS_MAX_SIZE_BYTES": 1_000_000,
    "BYPASS_AUTHORIZATION": False,
    "ASAP_PUB_KEYS_REPO_URL": None,
    "ASAP_PUB_KEYS_FOLDER": None,
    "ASAP_PUB_KEYS_FALLBACK_FOLDER": None,
    "ASAP_PUB_KEYS_AUDS": [],
    "REDIS_HOST": None,
    "REDIS_PORT": 6379,
    "REDIS_URL": None,
    "LOG_LEVEL": "INFO",
}
"""Every variable SPEC §4 names, with the default a deployment gets when it sets nothing."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment that sets none of our variables."""
    for name in {*SPEC_DEFAULTS, *(field.upper() for field in Settings.model_fields)}:
        monkeypatch.delenv(name, raising=False)


def test_every_spec_variable_has_its_default() -> None:
    settings = load_settings()

    actual = {name: getattr(settings, name.lower()) for name in SPEC_DEFAULTS}
    assert actual == SPEC_DEFAULTS


def test_limits_have_their_defaults() -> None:
    settings = load_settings()

    assert settings.whisper_max_participants_per_meeting == 50
    assert settings.ws_idle_timeout_s == 120.0
    assert settings.audio_rate_limit == 4.0
    assert settings.audio_burst_s == 60.0
    assert settings.max_pending_audio_s == 60.0


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_MAX_PARTICIPANTS_PER_MEETING", "2")
    monkeypatch.setenv("WS_IDLE_TIMEOUT_S", "3")
    monkeypatch.setenv("AUDIO_RATE_LIMIT", "1.5")
    monkeypatch.setenv("AUDIO_BURST_S", "4")
    monkeypatch.setenv("MAX_PENDING_AUDIO_S", "30")

    settings = load_settings()

    assert settings.whisper_max_participants_per_meeting == 2
    assert settings.ws_idle_timeout_s == 3.0
    assert settings.audio_rate_limit == 1.5
    assert settings.audio_burst_s == 4.0
    assert settings.max_pending_audio_s == 30.0


def test_default_flush_interval_in_seconds() -> None:
    assert load_settings().flush_interval_s == 2.0


def test_parallel_model_calls_share_the_cores_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("service.settings.usable_cores", lambda: 8)

    assert Settings().parallel_model_calls("cpu") == 8  # one thread a call by default
    assert Settings(whisper_cpu_threads=2).parallel_model_calls("cpu") == 4
    assert Settings(whisper_cpu_threads=2, worker_concurrency=2).parallel_model_calls("cpu") == 2
    assert Settings(whisper_cpu_threads=0).parallel_model_calls("cpu") == 1  # each call takes them all
    assert Settings(whisper_cpu_threads=16).parallel_model_calls("cpu") == 1
    assert Settings().parallel_model_calls("cuda") == 1
    assert Settings(whisper_parallel_calls=3).parallel_model_calls("cpu") == 3
    assert Settings(whisper_parallel_calls=3).parallel_model_calls("cuda") == 3


@pytest.mark.parametrize("word", ["1", "true", "yes", "TRUE", " Yes "])
def test_bypass_authorization_accepts_true_words(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    monkeypatch.setenv("BYPASS_AUTHORIZATION", word)

    assert load_settings().bypass_authorization is True


@pytest.mark.parametrize("word", ["0", "false", "no", ""])
def test_bypass_authorization_accepts_false_words(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    monkeypatch.setenv("BYPASS_AUTHORIZATION", word)

    assert load_settings().bypass_authorization is False


def test_return_transcribed_audio_is_a_flag_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_RETURN_TRANSCRIBED_AUDIO", "yes")

    assert load_settings().whisper_return_transcribed_audio is True


def test_gpu_indices_are_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_GPU_INDICES", "0,1")

    assert load_settings().whisper_gpu_indices == [0, 1]


def test_audiences_are_a_comma_list_without_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASAP_PUB_KEYS_AUDS", "jitsi, streaming-whisper,,")

    assert load_settings().asap_pub_keys_auds == ["jitsi", "streaming-whisper"]


def test_numbers_and_device_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BEAM_SIZE", "5")
    monkeypatch.setenv("WHISPER_DEVICE", "CUDA")
    monkeypatch.setenv("WHISPER_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("WHISPER_FLUSH_BUFFER_INTERVAL", "1500")
    monkeypatch.setenv("WHISPER_MIN_PROBABILITY", "0.55")
    monkeypatch.setenv("LOG_LEVEL", "debug")

    settings = load_settings()

    assert settings.beam_size == 5
    assert settings.whisper_device is Device.CUDA
    assert settings.whisper_model_path == tmp_path
    assert settings.flush_interval_s == 1.5
    assert settings.whisper_min_probability == 0.55
    assert settings.log_level == "DEBUG"


def test_tests_build_their_own_settings_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAM_SIZE", "5")

    assert load_settings(beam_size=3).beam_size == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BEAM_SIZE", "abc"),
        ("BEAM_SIZE", "0"),
        ("WHISPER_DEVICE", "tpu"),
        ("WHISPER_MODEL_PATH", "/does/not/exist"),
        ("VAD_MODEL_PATH", "/does/not/exist.onnx"),
        ("REDIS_URL", "http://x"),
        ("REDIS_PORT", "70000"),
        ("WHISPER_GPU_INDICES", "0,x"),
        ("WHISPER_GPU_INDICES", "-1"),
        ("WHISPER_MIN_PROBABILITY", "1.5"),
        ("WHISPER_FLUSH_BUFFER_INTERVAL", "soon"),
        ("WS_MAX_SIZE_BYTES", "10"),
        ("BYPASS_AUTHORIZATION", "maybe"),
        ("LOG_LEVEL", "chatty"),
        ("WHISPER_MAX_PARTICIPANTS_PER_MEETING", "0"),
        ("WS_IDLE_TIMEOUT_S", "0"),
        ("AUDIO_RATE_LIMIT", "0.5"),
        ("AUDIO_RATE_LIMIT", "fast"),
        ("AUDIO_BURST_S", "0"),
        ("MAX_PENDING_AUDIO_S", "5"),
    ],
)
def test_bad_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAM_SIZE", "abc")
    monkeypatch.setenv("WHISPER_DEVICE", "tpu")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "BEAM_SIZE" in str(caught.value)
    assert "WHISPER_DEVICE" in str(caught.value)


def test_broker_defaults_to_local_redis() -> None:
    settings = load_settings()

    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_configured is False


def test_broker_from_redis_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")

    settings = load_settings()

    assert settings.broker_url == "redis://redis.internal:6380/0"
    assert settings.redis_configured is True


def test_redis_url_wins_over_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_URL", "rediss://cache.example:6390/2")

    assert load_settings().broker_url == "rediss://cache.example:6390/2?ssl_cert_reqs=required"


@pytest.mark.parametrize(
    ("url", "broker_url"),
    [
        ("rediss://cache.example:6390/0", "rediss://cache.example:6390/0?ssl_cert_reqs=required"),
        (
            "rediss://:pw@cache.example/0?ssl_ca_certs=/ca.pem",
            "rediss://:pw@cache.example/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required",
        ),
        ("rediss://cache.example/0?ssl_cert_reqs=none", "rediss://cache.example/0?ssl_cert_reqs=none"),
        ("redis://cache.example/0", "redis://cache.example/0"),
    ],
)
def test_tls_urls_verify_the_server_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch, url: str, broker_url: str
) -> None:
    monkeypatch.setenv("REDIS_URL", url)

    assert load_settings().broker_url == broker_url


@pytest.mark.parametrize(
    "variable", ["WHISPER_MODEL_PATH", "REDIS_URL", "REDIS_HOST", "ASAP_PUB_KEYS_REPO_URL"]
)
def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "")

    settings = load_settings()

    assert getattr(settings, variable.lower()) is None

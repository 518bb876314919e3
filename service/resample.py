"""Streaming sample-rate conversion of PCM s16le: a client's 24 kHz (the OpenAI Realtime API's
rate) to the service's 16 kHz, chunk by chunk, the same whatever the chunks' sizes.

Polyphase: up by L, a windowed-sinc low-pass below the lower Nyquist frequency, down by M
(24 → 16 kHz: L 2, M 3). The last input samples the filter needs carry over to the next chunk,
so chunk boundaries leave no click and no sample is lost or repeated.
"""

from __future__ import annotations

import math

import numpy as np

TAPS_PER_PHASE = 32
"""Filter length per phase: from 24 kHz, 9 and 11 kHz (which would fold below 8 kHz) come out more
than 50 dB down (tests/unit/test_resample.py); 0.7 ms of delay."""
CUTOFF = 0.9
"""Of the lower Nyquist frequency (7.2 kHz of 8): speech above it is what Whisper drops anyway."""


class Resampler:
    """One stream's conversion; `process` takes PCM s16le bytes, returns PCM s16le bytes."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, not {from_rate} and {to_rate}")
        divisor = math.gcd(from_rate, to_rate)
        self.up = to_rate // divisor
        self.down = from_rate // divisor
        length = TAPS_PER_PHASE * self.up
        # Cut-off as a fraction of the upsampled rate's Nyquist frequency.
        cutoff = CUTOFF / max(self.up, self.down)
        times = np.arange(length) - (length - 1) / 2
        taps = cutoff * np.sinc(cutoff * times) * np.kaiser(length, 8.0)
        taps *= self.up / taps.sum()  # unity gain after the zeros the upsampling put in
        # taps[phase + k * up] is what input sample (n - k) weighs in output phase `phase`.
        self._phases = [taps[phase :: self.up][::-1].astype(np.float64) for phase in range(self.up)]
        self._history = np.zeros(TAPS_PER_PHASE - 1, dtype=np.float64)
        self._position = 0
        """Upsampled index of the next output sample, counted from the first history sample."""

    @property
    def identity(self) -> bool:
        return self.up == self.down

    def process(self, pcm: bytes) -> bytes:
        if self.identity:
            return pcm
        fresh = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        signal = np.concatenate([self._history, fresh])
        keep = TAPS_PER_PHASE - 1
        out = np.zeros(0, dtype=np.float64)
        # Output at upsampled index t (counted from the history's start) weighs the window of
        # input samples that starts at t // up with the filter's phase t % up.
        total = len(signal)
        positions = np.arange(self._position, (total - keep) * self.up, self.down)
        if len(positions):
            # Each phase's filter over every window of the signal (np.correlate runs in C), then
            # each output takes its phase's value at its window.
            valid = np.stack([np.correlate(signal, weights, "valid") for weights in self._phases])
            out = valid[positions % self.up, positions // self.up]
            self._position = int(positions[-1]) + self.down
        # Keep what the next outputs need; count positions from the new history's start.
        drop = total - keep
        self._history = signal[drop:]
        self._position -= drop * self.up
        samples = np.clip(np.rint(out), -32768, 32767).astype("<i2")
        return samples.tobytes()

// The audio rendering thread's half of the demo: mixes the microphone to mono, resamples it to
// 16 kHz, converts to signed 16-bit and hands the page whole chunks of `chunkSamples` samples.

const TARGET_RATE = 16000;
const ZERO_CROSSINGS = 8; // sinc lobes each side of the kernel: ~-50 dB stop band, 1-2 ms of delay
const LEVEL_INTERVAL_S = 0.05;

// A streaming windowed-sinc resampler. The low-pass sits at 90% of the lower Nyquist frequency, so
// 48 kHz speech brought down to 16 kHz does not fold its 8-24 kHz content back onto the voice band
// (which plain linear interpolation would do, and Whisper hears it as hiss).
class Resampler {
  constructor(inputRate, outputRate) {
    this.step = inputRate / outputRate; // input samples per output sample
    this.cutoff = 0.45 * Math.min(1, outputRate / inputRate); // cycles per input sample
    this.halfWidth = Math.ceil(ZERO_CROSSINGS / (2 * this.cutoff)); // input samples each side
    this.history = new Float32Array(4 * this.halfWidth + 1024);
    this.length = this.halfWidth; // starts with silence before the first sample
    this.position = this.halfWidth; // centre of the next output sample, in `history` indices
    this.output = new Float32Array(0);
  }

  weight(distance) {
    if (distance === 0) {
      return 2 * this.cutoff;
    }
    const sinc = Math.sin(2 * Math.PI * this.cutoff * distance) / (Math.PI * distance);
    return sinc * 0.5 * (1 + Math.cos((Math.PI * distance) / this.halfWidth)); // Hann window
  }

  // Takes one block of input; returns the output samples it completes (a view, valid until the next call).
  push(block) {
    this.discardConsumed();
    this.reserve(block.length);
    this.history.set(block, this.length);
    this.length += block.length;
    const ready = Math.max(0, Math.floor((this.length - this.halfWidth - this.position) / this.step) + 1);
    if (this.output.length < ready) {
      this.output = new Float32Array(ready + 16);
    }
    let count = 0;
    while (this.position + this.halfWidth < this.length) {
      const first = Math.ceil(this.position - this.halfWidth);
      const last = Math.floor(this.position + this.halfWidth);
      let sum = 0;
      for (let index = first; index <= last; index++) {
        sum += this.history[index] * this.weight(index - this.position);
      }
      this.output[count++] = sum;
      this.position += this.step;
    }
    return this.output.subarray(0, count);
  }

  discardConsumed() {
    const drop = Math.floor(this.position) - this.halfWidth;
    if (drop > 0) {
      this.history.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.position -= drop;
    }
  }

  reserve(extra) {
    if (this.length + extra > this.history.length) {
      const larger = new Float32Array(2 * (this.length + extra));
      larger.set(this.history.subarray(0, this.length));
      this.history = larger;
    }
  }
}

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.chunkSamples = options.processorOptions.chunkSamples;
    // `sampleRate` is the AudioContext's rate, a global of the worklet scope.
    this.resampler = sampleRate === TARGET_RATE ? null : new Resampler(sampleRate, TARGET_RATE);
    this.mono = new Float32Array(128);
    this.chunk = new Int16Array(this.chunkSamples);
    this.filled = 0;
    this.levelEvery = Math.round(sampleRate * LEVEL_INTERVAL_S);
    this.levelFrames = 0;
    this.levelSquares = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.port.postMessage({ type: "flushed", samples: this.chunk.slice(0, this.filled) });
        this.filled = 0;
      }
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length > 0) {
      const mono = this.mixDown(channels);
      this.measure(mono);
      this.append(this.resampler ? this.resampler.push(mono) : mono);
    }
    return true;
  }

  mixDown(channels) {
    if (channels.length === 1) {
      return channels[0];
    }
    const frames = channels[0].length;
    if (this.mono.length !== frames) {
      this.mono = new Float32Array(frames);
    }
    this.mono.fill(0);
    for (const channel of channels) {
      for (let i = 0; i < frames; i++) {
        this.mono[i] += channel[i] / channels.length;
      }
    }
    return this.mono;
  }

  measure(samples) {
    for (let i = 0; i < samples.length; i++) {
      this.levelSquares += samples[i] * samples[i];
    }
    this.levelFrames += samples.length;
    if (this.levelFrames >= this.levelEvery) {
      this.port.postMessage({ type: "level", rms: Math.sqrt(this.levelSquares / this.levelFrames) });
      this.levelFrames = 0;
      this.levelSquares = 0;
    }
  }

  append(samples) {
    for (let i = 0; i < samples.length; i++) {
      const clipped = Math.max(-1, Math.min(1, samples[i]));
      this.chunk[this.filled++] = Math.round(clipped < 0 ? clipped * 32768 : clipped * 32767);
      if (this.filled === this.chunkSamples) {
        // Transferred, not copied: the page owns this buffer now, the worklet starts a new one.
        this.port.postMessage({ type: "chunk", samples: this.chunk }, [this.chunk.buffer]);
        this.chunk = new Int16Array(this.chunkSamples);
        this.filled = 0;
      }
    }
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);

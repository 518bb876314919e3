"""The streaming policy's knobs, built from the service's Settings in one place. The measurements
behind each default are in docs/streaming-decisions.md; the switches the service never turns off
stay so that `bench.simulate --set NAME=VALUE` can measure the rule against its absence."""

from __future__ import annotations

from dataclasses import dataclass

from service.settings import Settings


@dataclass(frozen=True)
class PolicyConfig:
    interim_step_s: float = 1.0
    """New audio between two interim windows while someone speaks."""
    end_of_speech_s: float = 0.6
    """VAD silence after speech that closes an utterance (its words become final at once)."""
    flush_interval_s: float = 2.0
    """No audio at all for this long: pending speech becomes final (WHISPER_FLUSH_BUFFER_INTERVAL)."""
    max_window_s: float = 10.0
    """Past this, a final is cut at the widest gap between stable words."""
    hard_window_s: float = 20.0
    """Past this, a final is cut at the widest gap even without agreement: windows stay bounded."""
    speech_threshold: float = 0.5
    """VAD probability from which a frame is speech."""
    min_speech_s: float = 0.2
    """Speech (by VAD) a window must hold before it is worth a model call."""
    speech_pad_s: float = 0.4
    """Audio kept before the first speech frame: Whisper likes a little lead-in."""
    word_vad_margin_s: float = 0.2
    """A word is kept when the VAD heard speech within this margin of its timestamps."""
    final_tail_s: float = 0.3
    """Silence kept after the last speech in a final window."""
    overlap_s: float = 0.5
    """Audio before a cut that the next window hears again: Whisper skips words when a window starts
    abruptly mid-speech. Words it re-hears there are dropped by time and by text."""
    unheard_speech_s: float = 1.0
    """Speech (by VAD) after a final window's last word, or before a window's first word, that is
    transcribed again (without context and prompt), not committed over."""
    vad_frame_samples: int = 512
    """Samples the VAD scores at a time (Silero's frame at 16 kHz)."""
    min_probability: float = 0.7
    """Mean word probability a phrase needs before a sentence end may cut it early."""
    max_prompt_finals: int = 2
    """The last finals before a window's context whose text prompts the decoder (its previous
    text, read in one pass)."""
    return_audio: bool = False
    """Finals carry their audio (WHISPER_RETURN_TRANSCRIBED_AUDIO)."""
    phrase_finals: bool = True
    """Commit stable words at phrase boundaries (punctuation or a pause) without waiting for a
    sentence end."""
    phrase_min_words: int = 3
    """Fewest words in a phrase-sized final (a sentence end may close a shorter one)."""
    phrase_pause_s: float = 0.25
    """A gap between two stable words at least this long is a phrase boundary."""
    phrase_without_boundary: bool = True
    """Stable words after the last boundary are a phrase of their own once there are
    `phrase_min_words` of them. False: only punctuation and pauses end a phrase before the end
    of speech or `max_window_s`."""
    fuzzy_agreement: bool = True
    """Words of four letters or more that Whisper respells between hypotheses ("deadter's side",
    then "deadter site") still agree."""
    context_s: float = 10.5
    """A window's audio is at most this long when earlier finals fill it: before its new audio go
    the last finals whose audio fits, and their text is the decoder's prefix. 0: no context;
    committed audio stays in the window only as `overlap_s` and behind phrase finals until a
    sentence end."""
    context_tail_words: int = 4
    """Of the context's text, the last words the decoder is made to start with, at the timestamp
    where their audio starts; the text before them is its previous text, read in one pass.
    0: the whole context is forced."""
    stalled_words_per_s: float = 1.0
    """A hypothesis with fewer words than this per second of the speech the VAD heard in the
    window's pending audio (at least `stalled_min_speech_s` of it) stopped early: its window is
    heard again without context and prompt, and the next ones too until a final is cut from one
    that did not stall. 0: no check."""
    stalled_min_speech_s: float = 3.0
    final_keeps_surer_words: bool = True
    """A final window's word that replaces a single word of the last hypothesis keeps the earlier
    one when that was surer and heard whole."""
    settled_hypotheses: int = 3
    """Words this many consecutive hypotheses agreed on may be cut early whatever their
    probability. 0 turns it off (unsure words then wait for end of speech or `max_window_s`)."""
    sentence_pause_s: float = 0.2
    """A committed sentence end followed by at least this much silence (by the VAD, or between the
    word times) ends the utterance: its final goes out."""
    max_utterance_s: float = 20.0
    """An utterance longer than this (someone who never pauses) is sent at its best boundary among
    the committed words: a sentence end, else a comma, else the widest gap, never after a function
    word when anything else will do."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        """The knobs users set through the environment; the rest keep their measured defaults."""
        return cls(
            flush_interval_s=settings.flush_interval_s,
            min_probability=settings.whisper_min_probability,
            max_prompt_finals=settings.whisper_max_finals_in_initial_prompt,
            return_audio=settings.whisper_return_transcribed_audio,
        )

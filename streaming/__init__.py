"""The streaming policy: one participant's audio, speech flags and hypotheses in; windows to
transcribe and interims/finals out. Pure code: no I/O, no clock, no model (times, waits and the
model call are passed in).

Modules, each with one job:
- `config`: the knobs, built from the service's Settings (`PolicyConfig.from_settings`).
- `words`: a word and the text rules (compare, join, split into sentences, function words).
- `buffer`: the pending audio and the VAD's frames; every unit conversion.
- `agreement`: what two hypotheses share, and the committed words a window hears again.
- `cuts`: where an interim hypothesis may be cut, and where in the audio the cut goes.
- `hearing`: a hypothesis held against the VAD (real words, stopped or skipped speech, pauses).
- `history`: the recent finals (prompt, context audio, the committed tail).
- `utterances`: committed pieces into utterances, their ids, interims and finals.
- `window`: `WindowPlan`, what a worker is asked to transcribe.
- `participant`: `ParticipantPolicy`, the facade the driver calls (`add_audio`, `end`, `advance`,
  `apply`, `abandon`), and `snapshot`/`restore` to carry a stream over a reconnect.
- `snapshot`: `PolicySnapshot`, the whole state of one stream as one JSON value.
- `driver`: `drive`, the one loop around a policy; the caller passes in its clock, waits, model
  call and output (`WindowIO`).

How it works:
- Audio accumulates in a window that starts where the last committed words ended. Frames the VAD
  scores as non-speech are trimmed from the front, so silence costs no model call and yields no text.
- While someone speaks, a window is planned about once per `interim_step_s` of new audio
  (never more than one in flight: the caller waits for the result before asking again).
- Each result is a hypothesis for the whole window. Words on which two consecutive hypotheses
  agree (LocalAgreement-2) are stable; the policy commits phrase-sized runs of them (at punctuation
  or a pause, or after enough stable words), or the widest gap once the window passes
  `max_window_s`, and the window then starts after the committed words. Committed words never
  change: the interims show them first, then the rest of the hypothesis.
- Committing is internal (the window stays short, the prompt and context build on it); what the
  client stores is the utterance. Its final goes out at a committed sentence end the speaker paused
  after (`sentence_pause_s`), at any other word (not a function word) the VAD heard end of speech
  after (`end_of_speech_s`, even inside a chunk), at the end of speech, or, for someone who never
  pauses, at its best boundary once it passes `max_utterance_s`. Its `ts` is when its first word
  was spoken.
- The last committed phrases go before a window's new audio again, their text as the decoder's
  prefix (`context_s`): Whisper hears what led up to the new words without transcribing them
  twice. It reads that text in one pass and starts decoding at the last four words of it, where
  their audio starts (`context_tail_words`).
- When the VAD hears `end_of_speech_s` of silence, when no audio arrives for `flush_interval_s`,
  or when the meeting ends, the pending words become final: those of the last hypothesis when it
  heard all of the speech, else those of the whole window transcribed once more (where that
  hearing swaps a single word the last hypothesis was surer of, the earlier word stays). A final
  window that stops well short of the speech the VAD heard is heard again without context and
  prompt: speech is either in a final or transcribed again, never committed over.
"""

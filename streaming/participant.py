"""One participant's streaming policy: audio and speech flags in; windows to transcribe and
interims/finals out. It ties the buffer, the agreement rules, the cuts, the finals' history and
the utterances together; the package's docstring says how it behaves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.contracts import DecoderHints, WordTiming
from streaming.agreement import agreed_prefix, keep_surer_earlier_words
from streaming.buffer import StreamBuffer
from streaming.config import PolicyConfig
from streaming.cuts import choose_cut, cut_sample
from streaming.hearing import Hearing
from streaming.history import FinalsHistory, PastFinal
from streaming.snapshot import PolicySnapshot
from streaming.utterances import CommittedPiece, Transcript, Utterances, ends_utterance, new_uuid7
from streaming.window import WindowPlan
from streaming.words import Word, join_words, split_sentences


class ParticipantPolicy:
    def __init__(
        self, config: PolicyConfig, new_id: Callable[[], str] = new_uuid7, sample_rate: int = SAMPLE_RATE
    ) -> None:
        self.config = config
        self.buffer = StreamBuffer(config, sample_rate)
        self._history = FinalsHistory(config.max_prompt_finals)
        self._hearing = Hearing(self.buffer, self._history, config)
        self._utterances = Utterances(
            config, new_id, lambda seconds: self.buffer.wall_ms(self.buffer.samples(seconds))
        )
        self._planned_until = 0
        self._in_flight: WindowPlan | None = None
        self._hypothesis: list[Word] = []
        self._heard: list[int] = []
        """Per hypothesis word, how many consecutive hypotheses have agreed on it so far."""
        self._hypothesis_heard_until = 0
        """End sample of the audio the hypothesis was transcribed from."""
        self._ending = False
        self._context_paused = False
        """A window stopped early: the next ones go without context and prompt until a final is
        cut from one that did not."""

    # ---- input -------------------------------------------------------------------------------

    def add_audio(self, pcm: bytes, speech_probs: Iterable[float], arrival_ms: int) -> None:
        """Append a chunk and the VAD probabilities of the frames it completed."""
        self.buffer.add(pcm, speech_probs, arrival_ms)

    def end(self) -> None:
        """The meeting is over: whatever speech is pending goes out as final, nothing more is planned."""
        self._ending = True

    def discard_pending(self) -> None:
        """Forget the window (its participant's language cannot be served): nothing is planned for it."""
        self._set_hypothesis([], [])
        self.buffer.commit_until(self.buffer.received)
        self.buffer.drop_until(self.buffer.received)

    def cap_pending(self, max_seconds: float) -> float:
        """Keep at most `max_seconds` of window (workers behind or down): the oldest audio beyond it
        is dropped, with any words of it not yet final. Returns the seconds dropped (0.0 if none)."""
        buffer = self.buffer
        excess = buffer.received - buffer.window_start - buffer.samples(max_seconds)
        if excess <= 0:
            return 0.0
        cut = buffer.window_start + excess
        buffer.commit_until(cut)
        kept = [word for word in self._hypothesis if word.start * buffer.rate >= cut]
        self._set_hypothesis(kept, self._heard[len(self._hypothesis) - len(kept) :])
        buffer.drop_until(cut)
        return buffer.seconds(excess)

    # ---- carried over a reconnect ------------------------------------------------------------

    def snapshot(self) -> PolicySnapshot:
        """The stream's state, to go on from elsewhere. A window in flight counts as abandoned
        (its result will never be applied here): its audio is kept, and planned again."""
        if self._ending:
            raise ValueError("a stream that has ended has nothing to carry on")
        return PolicySnapshot(
            buffer=self.buffer.state(),
            history=self._history.state(),
            utterances=self._utterances.state(),
            hypothesis=tuple(self._hypothesis),
            heard=tuple(self._heard),
            planned_until=self.buffer.window_start if self._in_flight else self._planned_until,
            hypothesis_heard_until=self._hypothesis_heard_until,
            context_paused=self._context_paused,
        )

    def restore(self, snapshot: PolicySnapshot, now_ms: int) -> None:
        """Go on from `snapshot` (on a fresh policy). Its audio counts as having stopped at `now_ms`:
        the idle flush does not fire at once for the time the client was away, which would end
        the utterance it is about to go on with. Raises ValueError when the snapshot does not hold
        together."""
        if len(snapshot.heard) != len(snapshot.hypothesis):
            raise ValueError(f"{len(snapshot.heard)} agreement counts for {len(snapshot.hypothesis)} words")
        self.buffer.restore(snapshot.buffer)
        if self.buffer.last_audio_ms is not None:
            self.buffer.last_audio_ms = max(self.buffer.last_audio_ms, now_ms)
        self._history.restore(snapshot.history)
        self._utterances.restore(snapshot.utterances)
        self._set_hypothesis(list(snapshot.hypothesis), list(snapshot.heard))
        self._planned_until = snapshot.planned_until
        self._hypothesis_heard_until = snapshot.hypothesis_heard_until
        self._context_paused = snapshot.context_paused
        self._in_flight = None

    # ---- state -------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ending

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    @property
    def oldest_needed(self) -> int:
        """The first sample of the stream a later window may still hear: the audio of the finals
        kept as context, then the window's."""
        oldest = self._history.oldest_audio
        return self.buffer.window_start if oldest is None else min(oldest, self.buffer.window_start)

    @property
    def window_seconds(self) -> float:
        return self.buffer.window_seconds

    def has_pending_speech(self) -> bool:
        """Whether anything is still to become final: speech to transcribe, or committed words."""
        return self._speech_to_transcribe() or self._utterances.has_open

    def seconds_until_flush(self, now_ms: int) -> float | None:
        """When the idle flush would fire, for a caller that sleeps until something happens."""
        if self.buffer.last_audio_ms is None or not self.has_pending_speech():
            return None
        return max(0.0, self.config.flush_interval_s - (now_ms - self.buffer.last_audio_ms) / 1000.0)

    # ---- the loop's three calls: advance, then apply or abandon the window -------------------

    def advance(self, now_ms: int) -> tuple[list[Transcript], WindowPlan | None]:
        """What a caller does now: send the finals that need no model call, then transcribe the
        window (if any; at most one is in flight) and `apply()` its result."""
        settled = self._final_from_last_hypothesis(now_ms)
        return settled, self._next_window(now_ms)

    def abandon(self, plan: WindowPlan) -> None:
        """The window could not be transcribed: keep its audio, a later window covers it again."""
        if self._in_flight == plan:
            self._in_flight = None
            self._planned_until = self.buffer.window_start

    def apply(self, plan: WindowPlan, window_words: Sequence[WordTiming]) -> list[Transcript]:
        """Turn the hypothesis for `plan` into finals and an interim, and trim the window."""
        if self._in_flight != plan:
            raise ValueError("apply() takes the result of the window in flight, in order")
        self._in_flight = None
        words = self._hearing.stream_words(
            window_words, plan.start, plan.end, plan.context_samples, plan.final
        )
        stalled = self._hearing.stalled(words, plan.end)
        if plan.final:
            return self._apply_final(plan, words, stalled)
        return self._apply_interim(plan, words, stalled)

    # ---- planning ----------------------------------------------------------------------------

    def _speech_to_transcribe(self) -> bool:
        return self.buffer.speech_seconds() >= self.config.min_speech_s or bool(self._hypothesis)

    def _next_window(self, now_ms: int) -> WindowPlan | None:
        """The window to transcribe now, or None; at most one is in flight at a time."""
        buffer = self.buffer
        if self._in_flight is not None:
            return None
        if not self._hypothesis:
            buffer.trim_leading_silence()
        if not self._speech_to_transcribe():
            return None
        final = self._final_due(now_ms)
        new_audio_s = buffer.seconds(buffer.received - max(self._planned_until, buffer.window_start))
        if not final and new_audio_s < self.config.interim_step_s:
            return None
        end = self._final_end() if final else buffer.received
        context = self._context(end - buffer.window_start)
        context_pcm = b"".join(f.pcm for f in context)
        tail_samples = 0  # where the last context final's audio starts within the context's
        if context:
            tail_samples = (len(context_pcm) - len(context[-1].pcm)) // SAMPLE_WIDTH_BYTES + context[
                -1
            ].tail_offset
        plan = WindowPlan(
            start=buffer.window_start,
            end=end,
            final=final,
            pcm=context_pcm + buffer.slice(buffer.window_start, end),
            hints=DecoderHints(
                prompt=self._prompt(len(context)),
                prefix=" ".join(f.text for f in context),
                prefix_tail=context[-1].tail if context else "",
                prefix_tail_s=buffer.seconds(tail_samples),
            ),
            context_samples=len(context_pcm) // SAMPLE_WIDTH_BYTES,
            spans=(*((f.start, f.end) for f in context), (buffer.window_start, end)),
        )
        self._in_flight = plan
        self._planned_until = plan.end
        return plan

    def _final_from_last_hypothesis(self, now_ms: int) -> list[Transcript]:
        """Finals without a model call, when a final window is due and the last hypothesis already
        heard all of its speech: transcribing the same audio again would cost a call, and the
        finals would wait for it, for the same words (the benchmark's WER did not move).
        The next window then has nothing left to plan for that speech."""
        if self._in_flight is not None or not self.has_pending_speech() or not self._final_due(now_ms):
            return []
        if not self._speech_to_transcribe():
            return self._utterances.send_all()  # every word is committed already
        end = self._final_end()
        speech_end = self.buffer.last_speech_end(end)
        # A last word Whisper was unsure of may have been cut off at the window's edge: the final
        # window hears a little more after it.
        unsure = bool(self._hypothesis) and self._hypothesis[-1].probability < self.config.min_probability
        # A hypothesis that stopped well before the speech did (its last words came back from a
        # window that ended early) has not heard it all, whatever its window's end.
        stopped = self._hearing.stopped_early(self._hypothesis, end)
        if self._hypothesis_heard_until < speech_end or unsure or stopped:
            return []
        speech_end_s = self.buffer.seconds(speech_end)
        # As for a final window's words: none made up in the silence after the speech.
        words = [
            word
            for word in self._hypothesis
            if word.start < speech_end_s and self.buffer.heard_speech(word.start, word.end)
        ]
        self._set_hypothesis([], [])
        self._planned_until = end
        self._context_paused = False
        return self._commit(words, until_sample=end, end_of_speech=True)

    def _final_due(self, now_ms: int) -> bool:
        """Whether pending speech is to be finished now: meeting over, idle, or end of speech."""
        last_audio_ms = self.buffer.last_audio_ms
        idle = last_audio_ms is not None and now_ms - last_audio_ms >= self.config.flush_interval_s * 1000
        return self._ending or idle or self.buffer.trailing_silence_seconds() >= self.config.end_of_speech_s

    def _final_end(self) -> int:
        """Where a final window ends: whisper invents words in trailing silence ("I'm going to
        take a little bit of"), so shortly after the last speech the VAD heard."""
        speech_end = self.buffer.last_speech_end(self.buffer.received)
        return min(self.buffer.received, speech_end + self.buffer.samples(self.config.final_tail_s))

    def _prompt(self, context_finals: int) -> str:
        """The last finals before the window and its context."""
        if self._context_paused:
            return ""
        limit = self.buffer.window_start + self.buffer.samples(self.config.overlap_s)
        return self._history.prompt(limit, context_finals)

    def _context(self, new_samples: int) -> list[PastFinal]:
        """The last finals whose audio goes before the window's, `context_s` in all at most."""
        paused = self._context_paused or self.buffer.window_start < self.buffer.committed_until
        if not self.config.context_s or paused:
            return []
        return self._history.context(self.buffer.samples(self.config.context_s) - new_samples)

    # ---- results -----------------------------------------------------------------------------

    def _apply_final(self, plan: WindowPlan, words: list[Word], stalled: bool) -> list[Transcript]:
        # A final window that stopped well before the speech did ("Ask" of "Ask what you can
        # do for your country", then nothing at all with "Ask" as context) is heard again at
        # once without context and prompt: never committed over.
        stopped = self._hearing.stopped_early(words, plan.end)
        retry = (stalled or stopped) and plan.heard_with_context
        self._context_paused = retry
        if retry:
            self._planned_until = self.buffer.window_start
            return []
        if self.config.final_keeps_surer_words:
            words = keep_surer_earlier_words(self._hypothesis, words)
        self._set_hypothesis([], [])
        until = self._hearing.final_cut(words, plan.end)
        # Speech left after the cut is transcribed by the next final window: the utterance
        # goes on until then.
        return self._commit(words, until_sample=until, end_of_speech=until == plan.end)

    def _apply_interim(self, plan: WindowPlan, words: list[Word], stalled: bool) -> list[Transcript]:
        # Heard again at once without context and prompt. A window that skipped the speech before
        # its first word (after "This" as context, Whisper went on with the next sentence) commits
        # nothing, unless it is past `hard_window_s` (windows stay bounded): its words would commit
        # over that speech.
        skipped = self._hearing.skipped_start(words)
        retry = (stalled or skipped) and plan.heard_with_context
        self._hypothesis_heard_until = plan.end
        stable = agreed_prefix(self._hypothesis, words, fuzzy=self.config.fuzzy_agreement)
        heard = [self._heard[i] + 1 if i < stable else 1 for i in range(len(words))]
        window_s = self.buffer.seconds(plan.end - plan.start)
        bounded = window_s >= self.config.hard_window_s
        cut = None if skipped and not bounded else choose_cut(words, stable, heard, window_s, self.config)
        if bounded and not words:
            # Nothing heard in a window past `hard_window_s`: let go of its audio all the same.
            self.buffer.commit_until(plan.end - self.buffer.samples(self.config.speech_pad_s))
            self.buffer.drop_until(self.buffer.committed_until)
        # Context and prompt come back with the first final cut from a window that did not stall.
        self._context_paused = stalled or skipped or (self._context_paused and cut is None)
        if cut is None and retry:
            self._planned_until = self.buffer.window_start
        out: list[Transcript] = []
        if cut is not None:
            index = cut.last_word
            until = cut_sample(self.buffer, words[index], words[index + 1], self.config)
            out += self._commit(
                words[: index + 1], until_sample=until, trim=cut.trim, following=words[index + 1]
            )
            words, heard = words[index + 1 :], heard[index + 1 :]
        elif window_s >= self.config.max_window_s:
            self._trim_committed()
        self._set_hypothesis(words, heard)
        interim = self._utterances.interim(words)
        if interim is not None:
            out.append(interim)
        return out

    def _set_hypothesis(self, words: list[Word], heard: list[int]) -> None:
        self._hypothesis, self._heard = words, heard

    def _trim_committed(self) -> None:
        """Let go of committed audio the window still holds as context (it has grown too long)."""
        if self.buffer.committed_until > self.buffer.window_start:
            overlap = 0 if self.config.context_s else self.buffer.samples(self.config.overlap_s)
            self.buffer.drop_until(self.buffer.committed_until - overlap)

    # ---- committing ----------------------------------------------------------------------------

    def _commit(
        self,
        words: list[Word],
        until_sample: int,
        trim: bool = True,
        following: Word | None = None,
        end_of_speech: bool = False,
    ) -> list[Transcript]:
        """Make `words` final for good (the prompt, the context and overlap removal build on them)
        and add them to the open utterance; returns the finals this sends: the utterance up to a
        sentence end the speaker paused after, all of it at the end of speech, or a part of it
        once it is too long. `following`: the first word heard after the cut, if any."""
        buffer, config = self.buffer, self.config
        followers = [*words[1:], following][: len(words)]
        pauses = [
            self._hearing.pause_between(word, after) for word, after in zip(words, followers, strict=True)
        ]
        # A piece ends wherever an utterance may: the utterance ends there if the speaker paused.
        stops = {n for n, word in enumerate(words) if ends_utterance(word, pauses[n], config)}
        pieces = split_sentences(words, breaks=stops)
        last_word = -1
        # Audio of consecutive pieces is back to back: each starts where the previous one ended
        # (or at the window's lead-in after a pause) and the last ends at the cut. Word times are
        # the model's: a piece's first word may start before the pending audio or before the
        # previous piece's, so each bound is kept within the pending audio and after the last one;
        # else a piece's span would not match the audio the buffer still holds for it, and a
        # window taking it as context would carry less audio than its spans say.
        pending = buffer.pending_start
        cut = max(pending, min(until_sample, buffer.received))
        bounds = [pending]
        for piece in pieces[1:]:
            bounds.append(min(max(buffer.samples(piece[0].start), bounds[-1]), cut))
        bounds.append(cut)
        for n, piece in enumerate(pieces):
            start, end = bounds[n], bounds[n + 1]
            last = piece[-config.context_tail_words :] if config.context_tail_words else []
            # Within the piece's audio, however its word times came out.
            offset = buffer.samples(last[0].start) - start if last else 0
            offset = min(max(offset, 0), end - start)
            context_pcm = buffer.slice(start, end) if config.context_s else b""
            self._history.add(PastFinal(join_words(piece), start, end, context_pcm, join_words(last), offset))
            last_word += len(piece)
            pcm = buffer.slice(start, end) if config.return_audio else None
            self._utterances.add(CommittedPiece(piece, pcm, pauses[last_word]))
        self._history.forget_old_audio(buffer.samples(config.context_s))
        if words:
            self._history.remember_words(words)
        buffer.commit_until(until_sample)
        out = self._utterances.finals_due(end_of_speech)
        if trim:
            self._trim_committed()
        return out

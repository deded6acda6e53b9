"""What Parakeet's `transcribe()` returns, as words and segments clamped to the clip.

NeMo >= 2.0 returns a list of Hypothesis (old RNNT releases: a (best, all) tuple,
rnnt_models.py). `hyp.text`; `hyp.timestamp` = {'word', 'segment', 'char'}: lists of
dicts with 'word'/'segment'/'char', 'start_offset', 'end_offset' and, once converted,
'start'/'end' in seconds = offset * window_stride * subsampling_factor
(nemo/collections/asr/parts/utils/timestamp_utils.py, process_timestamp_outputs).
TDT's last token may carry a duration past the end of the input (NeMo 3.0: a word of
a 5.00 s clip ended at 5.12 s), so every time is clamped to the clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine_base import TextSegment, Transcript, Word

SENTENCE_END = (".", "?", "!")

def _first_hypothesis(output: Any) -> Any:
    """transcribe()'s answer for our single input: list[Hypothesis], or (best, all)."""
    if isinstance(output, tuple):
        output = output[0]
    if not output:
        return None
    hyp = output[0]
    return hyp[0] if isinstance(hyp, list) and hyp else hyp


@dataclass(frozen=True)
class Clock:
    """How to read one input's stamps: seconds per offset, and the input's length."""

    stride_s: float
    duration_s: float

    def times(self, stamp: dict) -> tuple[float, float] | None:
        """Seconds from 'start'/'end' when NeMo converted them, else offsets x stride;
        clamped to [0, duration]."""
        if "start" in stamp and "end" in stamp:
            start, end = float(stamp["start"]), float(stamp["end"])
        elif "start_offset" in stamp and "end_offset" in stamp:
            start = float(stamp["start_offset"]) * self.stride_s
            end = float(stamp["end_offset"]) * self.stride_s
        else:
            return None
        if start < 0 or end < 0:  # -1 marks "unknown" in forced-alignment output
            return None
        start = min(start, self.duration_s)
        return round(start, 3), round(min(max(end, start), self.duration_s), 3)


def _stamps(hyp: Any, kind: str) -> list[dict]:
    timestamp = getattr(hyp, "timestamp", None)
    if not isinstance(timestamp, dict):
        return []
    return [s for s in timestamp.get(kind) or [] if isinstance(s, dict)]


def parse_words(hyp: Any, clock: Clock) -> list[Word]:
    words = []
    for stamp in _stamps(hyp, "word"):
        text = str(stamp.get("word", stamp.get("char", ""))).strip()
        times = clock.times(stamp)
        if text and times:
            words.append(Word(text, *times))
    return words


def parse_segments(hyp: Any, words: list[Word], clock: Clock) -> list[TextSegment]:
    segments = []
    for stamp in _stamps(hyp, "segment"):
        text = str(stamp.get("segment", "")).strip()
        times = clock.times(stamp)
        if text and times:
            segments.append(TextSegment(times[0], times[1], text))
    return segments or segments_from_words(words)


def segments_from_words(words: list[Word]) -> list[TextSegment]:
    """Sentences by end punctuation, as NeMo's get_segment_offsets does, if it gave none."""
    segments: list[TextSegment] = []
    current: list[Word] = []
    for word in words:
        current.append(word)
        if word.word.endswith(SENTENCE_END):
            segments.append(_segment_of(current))
            current = []
    if current:
        segments.append(_segment_of(current))
    return segments


def _segment_of(words: list[Word]) -> TextSegment:
    return TextSegment(words[0].start, words[-1].end, " ".join(w.word for w in words))


def transcript_from(output: Any, clock: Clock, language: str | None) -> Transcript:
    hyp = _first_hypothesis(output)
    # Parakeet's Hypothesis carries no language id: report the caller's hint or "en".
    lang = language or "en"
    if hyp is None:
        return Transcript("", [], [], lang)
    if isinstance(hyp, str):
        return Transcript(hyp.strip(), [], [], lang)
    words = parse_words(hyp, clock)
    text = str(getattr(hyp, "text", "") or "").strip() or " ".join(w.word for w in words)
    return Transcript(text, words, parse_segments(hyp, words, clock), lang)



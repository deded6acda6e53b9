"""Words + speaker turns -> speaker-labelled blocks (the transcribe-with-speakers core).

Each word goes to the turn it overlaps most; a word that overlaps none goes to the
turn holding its midpoint, else to the nearest turn. Blocks break on a change of
speaker or a silence longer than `gap_s`. Parakeet's tokens carry no leading spaces:
text is joined with single spaces and no space before punctuation.

Runs in O((words + turns) log turns): a 3-hour meeting has ~30k words.
Words must be sorted by start for `assign_speakers`; `merge` sorts them.
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?%)\]}…])")
UNKNOWN = "Speaker_unknown"


@dataclass(frozen=True)
class TimedWord:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str


@dataclass
class Block:
    speaker: str
    start: float
    end: float
    words: list[TimedWord]

    @property
    def text(self) -> str:
        return join_words(w.word for w in self.words)


def talk_seconds(turns: Sequence[SpeakerTurn]) -> dict[str, float]:
    """Seconds of speech per speaker, summed over their turns."""
    seconds: dict[str, float] = {}
    for turn in turns:
        seconds[turn.speaker] = seconds.get(turn.speaker, 0.0) + turn.end - turn.start
    return seconds


def join_words(words: object) -> str:
    """Single spaces between tokens, none before punctuation."""
    text = " ".join(w.strip() for w in words if w.strip())  # type: ignore[attr-defined]
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def assign_speakers(words: Sequence[TimedWord],
                    turns: Sequence[SpeakerTurn]) -> list[str]:
    """The speaker of every word, for words sorted by start (UNKNOWN only when there
    are no turns at all). A sweep: turns enter when they start before a word ends and
    leave once they end before a word starts, so each word sees only live turns."""
    if not turns:
        return [UNKNOWN] * len(words)
    ordered = sorted(turns, key=lambda t: t.start)
    nearest = _Nearest(ordered)
    live: list[tuple[float, int]] = []  # (end, index) heap
    nxt, result = 0, []
    for word in words:
        while nxt < len(ordered) and ordered[nxt].start < word.end:
            heapq.heappush(live, (ordered[nxt].end, nxt))
            nxt += 1
        while live and live[0][0] <= word.start:
            heapq.heappop(live)
        result.append(_best(word, [ordered[i] for _, i in live])
                      or nearest.speaker_at((word.start + word.end) / 2))
    return result


def _best(word: TimedWord, live: list[SpeakerTurn]) -> str | None:
    """The speaker of the live turn overlapping the word most (earliest on a tie)."""
    best, most = None, 0.0
    for turn in sorted(live, key=lambda t: t.start):
        overlap = min(turn.end, word.end) - max(turn.start, word.start)
        if overlap > most:
            best, most = turn.speaker, overlap
    return best


class _Nearest:
    """The turn nearest a time: among turns started before it, the one reaching
    furthest (a prefix maximum of ends); after it, the first to start."""

    def __init__(self, ordered: Sequence[SpeakerTurn]) -> None:
        self.turns = ordered
        self.starts = [t.start for t in ordered]
        self.reach: list[int] = []  # index of the furthest-reaching turn in turns[:i+1]
        for i, turn in enumerate(ordered):
            far = self.reach[-1] if self.reach else i
            self.reach.append(i if turn.end > ordered[far].end else far)

    def speaker_at(self, t: float) -> str:
        i = bisect.bisect_right(self.starts, t)
        options = ([self.turns[self.reach[i - 1]]] if i else []) + \
            ([self.turns[i]] if i < len(self.turns) else [])
        return min(options, key=lambda turn: max(turn.start - t, t - turn.end, 0.0)).speaker


def blocks(words: Sequence[TimedWord], speakers: Sequence[str],
           gap_s: float = 1.5) -> list[Block]:
    """Consecutive words of one speaker, split where silence exceeds gap_s."""
    result: list[Block] = []
    for word, speaker in zip(words, speakers):
        last = result[-1] if result else None
        if last is None or last.speaker != speaker or word.start - last.end > gap_s:
            result.append(Block(speaker, word.start, word.end, [word]))
        else:
            last.words.append(word)
            last.end = max(last.end, word.end)
    return result


def merge(words: Sequence[TimedWord], turns: Sequence[SpeakerTurn],
          gap_s: float = 1.5) -> list[Block]:
    ordered = sorted(words, key=lambda w: (w.start, w.end))
    return blocks(ordered, assign_speakers(ordered, turns), gap_s)

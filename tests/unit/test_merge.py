"""Merging words with speaker turns: examples, and properties checked by hypothesis
against a brute-force reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.audio.merge import UNKNOWN, SpeakerTurn, TimedWord, assign_speakers, join_words, merge


def w(word: str, start: float, end: float) -> TimedWord:
    return TimedWord(word, start, end)


def t(start: float, end: float, speaker: str) -> SpeakerTurn:
    return SpeakerTurn(start, end, speaker)


def test_join_words_puts_no_space_before_punctuation():
    assert join_words(["Hello", ",", "world", ".", "It's", "50", "%", "done", "!"]) == \
        "Hello, world. It's 50% done!"
    assert join_words(["  a", "b  ", ""]) == "a b"


def test_each_word_goes_to_the_turn_it_overlaps_most():
    turns = [t(0, 2, "A"), t(1.8, 4, "B")]
    assert assign_speakers([w("x", 1.5, 1.9), w("y", 1.85, 2.5)], turns) == ["A", "B"]


def test_words_between_turns_go_to_the_nearest_turn():
    turns = [t(0, 1, "A"), t(5, 6, "B")]
    assert assign_speakers([w("x", 1.2, 1.4), w("y", 4.5, 4.8), w("z", 9, 9.5)], turns) == \
        ["A", "B", "B"]
    assert assign_speakers([w("x", 0, 1)], []) == [UNKNOWN]


def test_blocks_break_on_speaker_change_and_long_gaps():
    words = [w("Hi", 0.0, 0.3), w("there.", 0.35, 0.7), w("Yes", 1.0, 1.2),
             w("so", 1.3, 1.5), w("later", 3.5, 3.8)]
    turns = [t(0, 0.8, "A"), t(0.9, 4, "B")]
    got = [(b.speaker, b.text, b.start, b.end) for b in merge(words, turns)]
    assert got == [("A", "Hi there.", 0.0, 0.7), ("B", "Yes so", 1.0, 1.5),
                   ("B", "later", 3.5, 3.8)]


def reference_speaker(word: TimedWord, turns: list[SpeakerTurn]) -> str:
    """Brute force: most overlap (earliest turn on a tie), else nearest by midpoint."""
    best, most = None, 0.0
    for turn in sorted(turns, key=lambda x: x.start):
        overlap = min(turn.end, word.end) - max(turn.start, word.start)
        if overlap > most:
            best, most = turn.speaker, overlap
    if best is not None:
        return best
    mid = (word.start + word.end) / 2
    return min(turns, key=lambda x: 0.0 if x.start <= mid <= x.end
               else min(abs(x.start - mid), abs(x.end - mid))).speaker


times = st.floats(min_value=0, max_value=600, allow_nan=False).map(lambda x: round(x, 2))
durations = st.floats(min_value=0.01, max_value=30).map(lambda x: round(x, 2))
word_lists = st.lists(st.tuples(times, st.floats(0.01, 1.5)), max_size=80).map(
    lambda xs: sorted((TimedWord(f"w{i}", s, round(s + d, 2)) for i, (s, d) in enumerate(xs)),
                      key=lambda x: (x.start, x.end)))
turn_lists = st.lists(st.tuples(times, durations, st.sampled_from("ABCD")), min_size=1,
                      max_size=40).map(
    lambda xs: [SpeakerTurn(s, round(s + d, 2), f"Speaker_{k}") for s, d, k in xs])


@settings(max_examples=300, deadline=None)
@given(word_lists, turn_lists)
def test_assignment_has_most_overlap_or_is_nearest(words, turns):
    got = assign_speakers(words, turns)
    for word, speaker in zip(words, got):
        expected = reference_speaker(word, turns)
        if speaker != expected:  # equal distances may tie between turns: same quality
            mid = (word.start + word.end) / 2
            assert _distance(mid, turns, speaker) == _distance(mid, turns, expected)
            assert _overlap(word, turns, speaker) == _overlap(word, turns, expected)


@settings(max_examples=300, deadline=None)
@given(word_lists, turn_lists, st.floats(0.1, 5))
def test_blocks_keep_every_word_once_in_order_one_speaker_each(words, turns, gap):
    result = merge(words, turns, gap_s=gap)
    flat = [word for block in result for word in block.words]
    assert flat == words
    for block in result:
        assert block.start == block.words[0].start
        assert block.end == max(x.end for x in block.words)
    for a, b in zip(result, result[1:]):
        assert a.speaker != b.speaker or b.start - a.end > gap


def _overlap(word, turns, speaker) -> float:
    return max([min(x.end, word.end) - max(x.start, word.start)
                for x in turns if x.speaker == speaker] + [0.0])


def _distance(mid, turns, speaker) -> float:
    return min(0.0 if x.start <= mid <= x.end else min(abs(x.start - mid), abs(x.end - mid))
               for x in turns if x.speaker == speaker)

"""Word times by forced alignment: PocketSphinx places a known line's words in its audio.

The recogniser's own word times are rough (Whisper's are ~0.16 s off at a median
line edge, 0.48 s at the 90th percentile); PocketSphinx's en-us acoustic model and
CMU dictionary, bundled in its wheel, align a line's text to the audio around it
to ~0.03 s (median), so words land on the right side of a speaker change.

Words missing from the dictionary get a pronunciation from dictionary parts
("to-morrow", "notesbook"), number words ("10") or crude letter-to-sound rules, so
alignment covers every word. Where alignment stops early, the words it did not
place are spread after the last placed one; where it fails, over the line, in
proportion to word length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from engine_base import SAMPLE_RATE, Word

ALIGN_PAD_S = 0.3  # the recogniser's line bounds are rough; give the aligner slack
MIN_WORD_S = 0.01
FILLERS = ("<s>", "</s>", "<sil>")
_VARIANT = re.compile(r"\(\d+\)$")  # "to(3)": the 3rd pronunciation of "to"


@dataclass
class Line:
    """Recognised text and the span (seconds) the recogniser heard it in."""

    text: str
    start: float
    end: float


# --------------------------------------------------------------------------- lexicon

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> list[str]:
    """English words for 0 <= n < 1e6 ("105" -> one hundred five)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_words(n % 10) if n % 10 else [])
    if n < 1000:
        return number_words(n // 100) + ["hundred"] + (number_words(n % 100) if n % 100 else [])
    return number_words(n // 1000) + ["thousand"] + (number_words(n % 1000) if n % 1000 else [])


# Longest grapheme first; a rough guess is enough for alignment, not for recognition.
_LETTER_RULES = sorted({
    "tch": "CH", "igh": "AY", "ough": "AO", "th": "TH", "sh": "SH", "ch": "CH", "ph": "F",
    "wh": "W", "ck": "K", "ng": "NG", "qu": "K W", "kn": "N", "wr": "R", "ee": "IY",
    "ea": "IY", "oo": "UW", "ou": "AW", "ow": "OW", "ai": "EY", "ay": "EY", "oi": "OY",
    "oy": "OY", "au": "AO", "aw": "AO", "ie": "IY", "ei": "EY", "er": "ER", "ir": "ER",
    "ur": "ER", "ar": "AA R", "or": "AO R", "a": "AE", "b": "B", "c": "K", "d": "D",
    "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH", "k": "K", "l": "L",
    "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T",
    "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "IY", "z": "Z",
}.items(), key=lambda kv: -len(kv[0]))


def letter_phones(word: str) -> str:
    """Crude letter-to-sound rules for a lowercase alphabetic word."""
    if len(word) > 3 and word.endswith("e") and word[-2] not in "aeiou":
        word = word[:-1]  # silent final e ("bike")
    word = re.sub(r"([b-df-hj-np-tv-z])\1", r"\1", word)  # doubled consonants
    phones, i = [], 0
    while i < len(word):
        for graph, sound in _LETTER_RULES:
            if word.startswith(graph, i):
                phones.append(sound)
                i += len(graph)
                break
        else:
            i += 1  # not a letter we know
    return " ".join(phones)


def alnum_core(token: str) -> str:
    """Lowercase token without surrounding punctuation ("Hello," -> "hello")."""
    return re.sub(r"^[^\w']+|[^\w']+$", "", token.lower()).strip("'_")


class Lexicon:
    """Maps recognised tokens to words in the decoder's dictionary, adding guesses."""

    def __init__(self, decoder) -> None:
        self._decoder = decoder
        self._keys: dict[str, str | None] = {}

    def key(self, token: str) -> str | None:
        """The dictionary word to align for `token`, or None if there is none."""
        core = alnum_core(token)
        if not core:
            return None
        if core not in self._keys:
            self._keys[core] = self._resolve(core, token)
        return self._keys[core]

    def _resolve(self, core: str, token: str) -> str | None:
        for candidate in (core, token.lower().strip(",;:!?\"()"), core + "."):
            if self._decoder.lookup_word(candidate):
                return candidate
        phones = self.phones(core)
        if not phones:
            return None
        try:  # our own spelling as the key keeps it apart from real entries
            self._decoder.add_word(core, phones, True)
        except RuntimeError:
            return None
        return core

    def phones(self, core: str) -> str:
        """A pronunciation for a word missing from the dictionary."""
        parts = [p for p in re.split(r"[^a-z0-9']+", core) if p]
        return " ".join(filter(None, (self._part_phones(p) for p in parts)))

    def _part_phones(self, part: str) -> str:
        """Number words, a dictionary entry, two of them, or letter-to-sound rules."""
        if part.isdigit():
            words = number_words(int(part)) if len(part) <= 6 else [_ONES[int(d)] for d in part]
            return " ".join(filter(None, (self._decoder.lookup_word(w) for w in words)))
        found = self._decoder.lookup_word(part)
        if found:
            return found
        split = self._compound(part)
        return split if split else letter_phones(re.sub(r"[^a-z]", "", part))

    def _compound(self, part: str) -> str | None:
        """Two dictionary words making up `part` ("notesbook"), longest head first."""
        for cut in range(len(part) - 3, 2, -1):
            head, tail = self._decoder.lookup_word(part[:cut]), self._decoder.lookup_word(part[cut:])
            if head and tail:
                return f"{head} {tail}"
        return None


# --------------------------------------------------------------------------- word times


def _weights(tokens: list[str]) -> np.ndarray:
    return np.array([len(alnum_core(t)) + 1 for t in tokens], dtype=np.float64)


def spread(tokens: list[str], start: float, end: float) -> list[tuple[float, float]]:
    """Times for tokens spread over [start, end] in proportion to their length."""
    weights = _weights(tokens)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def fill_unaligned(tokens: list[str], times: list[tuple[float, float] | None]
                   ) -> list[tuple[float, float]]:
    """Share each aligned word's time with the unaligned tokens after it (or, at
    the line start, before it); [] if nothing was aligned."""
    aligned = [i for i, t in enumerate(times) if t is not None]
    out: list[tuple[float, float]] = []
    for n, i in enumerate(aligned):
        first = 0 if n == 0 else i
        last = aligned[n + 1] if n + 1 < len(aligned) else len(tokens)
        out.extend(spread(tokens[first:last], *times[i]))
    return out


def merge_punctuation(tokens: list[str]) -> list[str]:
    """Attach tokens with no letters or digits ("-", "...") to their neighbour."""
    out: list[str] = []
    for token in tokens:
        if out and not alnum_core(token):
            out[-1] += token
        elif out and not alnum_core(out[-1]):
            out[-1] += token
        else:
            out.append(token)
    return out


def tidy(words: list[Word], duration: float) -> list[Word]:
    """Make times monotonic, non-overlapping, end > start and inside [0, duration]."""
    times, floor = [], 0.0
    for w in words:  # forwards: no overlaps, no empty words
        start = max(w.start, floor)
        floor = max(w.end, start + MIN_WORD_S)
        times.append((start, floor))
    ceiling = duration
    for i in range(len(times) - 1, -1, -1):  # backwards: squeeze a tail that ran past the end
        end = min(times[i][1], ceiling)
        ceiling = max(min(times[i][0], end - MIN_WORD_S), 0.0)
        times[i] = (ceiling, end)
    return [Word(w.word, round(float(a), 3), round(float(b), 3)) for w, (a, b) in zip(words, times)]



def place_words(tokens: list[str], keys: list[str | None], aligned: list[tuple[float, float]],
                start: float, end: float) -> list[tuple[float, float]]:
    """Times for every token: aligned ones as found, tokens without a key share their
    neighbour's time, and tokens past a partial alignment are spread up to `end`."""
    it = iter(aligned)
    times = [next(it, None) if k else None for k in keys]
    placed = [i for i, t in enumerate(times) if t is not None]
    if not placed:
        return spread(tokens, start, end)
    complete = len(aligned) == sum(1 for k in keys if k)
    cut = len(tokens) if complete else placed[-1] + 1
    head = fill_unaligned(tokens[:cut], times[:cut])
    rest = tokens[cut:]
    if not rest:
        return head
    after = head[-1][1]
    return head + spread(rest, after, max(end, after + 0.1 * len(rest)))



# --------------------------------------------------------------------------- aligner


class Aligner:
    """PocketSphinx in alignment mode (no language model). Not thread-safe."""

    def __init__(self) -> None:
        import pocketsphinx

        self._decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL")
        self.lexicon = Lexicon(self._decoder)

    def lookup(self, word: str) -> str | None:
        """The dictionary's pronunciation of `word`, if it has one."""
        return self._decoder.lookup_word(word)

    def align_line(self, audio: np.ndarray, line: Line, lo: float, hi: float) -> list[Word]:
        """Word times for one line, searched for in [lo, hi] around the line."""
        tokens = line.text.split()
        keys = [self.lexicon.key(t) for t in tokens]
        # on the input's 10 ms frame grid, so word times do not shift with the span
        start = math.ceil(max(lo, line.start - ALIGN_PAD_S, 0.0) * 100) / 100
        end = min(hi, line.end + ALIGN_PAD_S)
        span = audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
        aligned = self._force_align([k for k in keys if k], span, start)
        times = place_words(tokens, keys, aligned, line.start, line.end)
        return [Word(t, a, b) for t, (a, b) in zip(tokens, times)]

    def _force_align(self, keys: list[str], span: np.ndarray,
                     offset: float) -> list[tuple[float, float]]:
        """PocketSphinx times for the leading `keys` it could place in `span`.

        When the search does not reach the end of the text it returns its best
        partial path: the words of that path that match the text's start are kept."""
        if not keys or len(span) < SAMPLE_RATE // 20:
            return []
        pcm = (np.clip(span, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        try:
            self._decoder.set_align_text(" ".join(keys))
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, full_utt=True)
            self._decoder.end_utt()
            segments = list(self._decoder.seg() or [])
        except RuntimeError:
            return []
        times: list[tuple[float, float]] = []
        for seg in segments:
            word = _VARIANT.sub("", seg.word)
            if word in FILLERS or word.startswith("["):
                continue
            if len(times) >= len(keys) or word != keys[len(times)]:
                break
            times.append((offset + seg.start_frame / 100.0, offset + (seg.end_frame + 1) / 100.0))
        return times

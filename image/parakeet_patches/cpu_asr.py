"""CPU speech recognition with word times, from weights that ship inside wheels.

Moonshine tiny-en (bundled in moonshine-voice 0.1.0) recognises the speech and gives
lines with start times only; PocketSphinx (bundled en-us acoustic model and CMU
dictionary) then force-aligns each line's text to that line's audio to get
per-word start/end times. Nothing is downloaded at run time.

Long inputs are cut into chunks of at most MAX_CHUNK_S in the middle of pauses,
because Moonshine's own voice-activity segmenter force-cuts lines at ~10 s and
re-reads an overlap after the cut, which loses or duplicates words there. Each
chunk is recognised on its own (this also bounds the memory of Moonshine's
list-of-floats input) and its line times are shifted back to the input's.

Words missing from PocketSphinx's dictionary get a pronunciation from dictionary
parts ("to-morrow", "notesbook"), number words ("10") or crude letter-to-sound
rules, so alignment covers every word. Where alignment stops early, the words it
did not place are spread after the last placed one; where it fails, over the line,
in proportion to word length.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass

import numpy as np

from frontend import noise_profile, reduce_noise, shape
from engine_base import SAMPLE_RATE, EngineError, TextSegment, Transcript, Word

MODEL_NAME = "moonshine/tiny-en+pocketsphinx-align"
ENGLISH = ("en", "english")
MAX_CHUNK_S = 9.0  # under Moonshine's ~10 s forced line cut
MIN_CHUNK_S = 3.0  # no cut closer than this to the previous one
SMOOTH_S = 0.02  # level smoothing, enough to bridge a stop closure's spikes
SILENCE_PEAK = 1e-3  # ~ -60 dBFS: nothing louder means nothing to recognise
ALIGN_PAD_S = 0.3  # Moonshine's line bounds are VAD-based; give the aligner slack
MIN_WORD_S = 0.01
FLUSH_SAMPLES = SAMPLE_RATE  # 1 s: shorter leaves results depending on the previous call
TARGET_PEAK = 0.5  # robust peak quiet input is raised to
MAX_GAIN = 100.0
FILLERS = ("<s>", "</s>", "<sil>")
_VARIANT = re.compile(r"\(\d+\)$")  # "to(3)": the 3rd pronunciation of "to"


@dataclass
class _Line:
    text: str
    start: float
    end: float


# --------------------------------------------------------------------------- chunks


def frame_db(audio: np.ndarray, hop: int) -> np.ndarray:
    """Level in dB per hop-sized frame, smoothed over SMOOTH_S."""
    frames = len(audio) // hop
    power = np.square(audio[: frames * hop].astype(np.float64)).reshape(frames, hop).mean(axis=1)
    width = max(1, int(SMOOTH_S * SAMPLE_RATE / hop))
    power = np.convolve(power, np.ones(width) / width, mode="same")
    return 10.0 * np.log10(power + 1e-12)


def quiet_runs(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end frames of the pauses: runs well below the file's speech level."""
    floor, loud = np.percentile(level, 5), np.percentile(level, 95)
    quiet = level < floor + 0.25 * (loud - floor)  # relative: works at any gain
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _best_cut(starts: np.ndarray, ends: np.ndarray, level: np.ndarray, lo: int, hi: int) -> int:
    """The frame in [lo, hi) farthest inside a pause (a pause may run past the
    window); the quietest frame if the window has no pause."""
    near = np.flatnonzero((ends > lo) & (starts < hi))
    if not len(near):
        return lo + int(np.argmin(level[lo:hi]))
    cuts = np.clip((starts[near] + ends[near]) // 2, lo, hi - 1)
    margins = np.minimum(cuts - starts[near], ends[near] - cuts)
    return int(cuts[int(np.argmax(margins))])


def plan_chunks(audio: np.ndarray, max_s: float = MAX_CHUNK_S,
                min_s: float = MIN_CHUNK_S) -> list[tuple[int, int]]:
    """Sample ranges covering the input, each at most max_s long, cut deep inside
    pauses: a chunk that starts just after speech makes Moonshine invent a word."""
    hop = SAMPLE_RATE // 100
    if len(audio) <= max_s * SAMPLE_RATE:
        return [(0, len(audio))]
    level = frame_db(audio, hop)
    starts, ends = quiet_runs(level)
    max_f, min_f = int(max_s * 100), int(min_s * 100)
    bounds, pos = [0], 0
    while len(level) - pos > max_f:  # the last chunk is kept >= min_s too
        pos = _best_cut(starts, ends, level, pos + min_f, min(pos + max_f, len(level) - min_f))
        bounds.append(pos * hop)
    bounds.append(len(audio))
    return list(zip(bounds[:-1], bounds[1:]))


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


def normalise_gain(audio: np.ndarray) -> np.ndarray:
    """Raise quiet recordings to a level Moonshine's voice detector reacts to.

    Speech peaking at ~-40 dBFS is otherwise mostly skipped; never attenuates."""
    robust_peak = float(np.percentile(np.abs(audio[::7]), 99.9))  # a click is ignored
    if robust_peak <= 0.0:
        return audio
    gain = min(TARGET_PEAK / robust_peak, MAX_GAIN)
    return audio if gain <= 1.0 else np.clip(audio * gain, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- engine


class CpuTranscriber:
    """Moonshine tiny-en lines, PocketSphinx forced alignment for word times."""

    model_name = MODEL_NAME

    def __init__(self) -> None:
        self._moonshine = None
        self._decoder = None
        self._lexicon: Lexicon | None = None
        self._lock = threading.Lock()  # both native handles are single-threaded
        self.loaded = False

    def load(self) -> None:
        """Load Moonshine tiny-en from the wheel's assets and a PocketSphinx aligner."""
        try:
            self._moonshine = self._load_moonshine()
            self._decoder = self._load_decoder()
        except Exception as exc:  # noqa: BLE001 - any failure here is a load failure
            raise EngineError("load", f"{type(exc).__name__}: {exc}") from exc
        self._lexicon = Lexicon(self._decoder)
        self._flush()  # warm-up: the first request is not slower than the others
        self.loaded = True

    @staticmethod
    def _load_moonshine():
        # Never moonshine_voice.MicTranscriber (imports sounddevice, which needs
        # PortAudio) nor get_model_for_language() (downloads): the wheel's own folder.
        import moonshine_voice
        from moonshine_voice.moonshine_api import ModelArch
        from moonshine_voice.transcriber import Transcriber

        path = os.path.join(os.path.dirname(moonshine_voice.__file__), "assets", "tiny-en")
        if not os.path.isfile(os.path.join(path, "encoder_model.ort")):
            raise FileNotFoundError(f"moonshine tiny-en weights missing at {path} "
                                    "(needs moonshine-voice==0.1.0)")
        # Each line would otherwise come back with a Python-list copy of its audio.
        return Transcriber(path, ModelArch.TINY, options={"return_audio_data": "false"})

    @staticmethod
    def _load_decoder():
        import pocketsphinx

        # No language model: the decoder is only ever used in alignment mode.
        return pocketsphinx.Decoder(lm=None, loglevel="FATAL")

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """Words with absolute times in seconds, and one segment per Moonshine line."""
        check_language(language)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be 1-D mono samples, got shape {audio.shape}")
        if self._moonshine is None or self._lexicon is None:
            raise EngineError("transcribe", "the CPU recogniser is not loaded")
        try:
            with self._lock:
                return self._transcribe(np.nan_to_num(audio))
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - the server reports engine failures
            raise EngineError("transcribe", f"{type(exc).__name__}: {exc}") from exc

    def _transcribe(self, audio: np.ndarray) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        if len(audio) < SAMPLE_RATE // 10 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
            return Transcript(text="", words=[], segments=[])
        audio = normalise_gain(audio)
        lines = self._recognise(audio)
        per_line = []
        for i, line in enumerate(lines):
            lo = lines[i - 1].end if i else 0.0
            hi = lines[i + 1].start if i + 1 < len(lines) else duration
            per_line.append(self._align_line(audio, line, lo, hi))
        words = tidy([w for ws in per_line for w in ws], duration)
        segments, pos = [], 0
        for line, line_words in zip(lines, per_line):
            mine, pos = words[pos: pos + len(line_words)], pos + len(line_words)
            segments.append(TextSegment(mine[0].start, mine[-1].end, line.text))
        return Transcript(text=" ".join(s.text for s in segments), words=words,
                          segments=segments)

    def _recognise(self, audio: np.ndarray) -> list[_Line]:
        """Moonshine lines over the whole input, chunk by chunk, in absolute seconds."""
        lines: list[_Line] = []
        audio = shape(audio)  # for Moonshine only; alignment uses the original
        audio = reduce_noise(audio, noise_profile(audio))
        for first, last in plan_chunks(audio):
            chunk = audio[first:last]
            if float(np.max(np.abs(chunk))) < SILENCE_PEAK:
                continue
            offset, limit = first / SAMPLE_RATE, last / SAMPLE_RATE
            for line in self._decode_chunk(chunk):
                text = " ".join(merge_punctuation((line.text or "").split()))
                start = offset + max(float(line.start_time), 0.0)
                end = min(start + max(float(line.duration), 0.0), limit)
                if text and end > start:
                    lines.append(_Line(text, start, end))
        lines.sort(key=lambda ln: ln.start)
        return lines

    def _decode_chunk(self, chunk: np.ndarray) -> list:
        """Moonshine's lines for one chunk (times relative to the chunk)."""
        for attempt in range(2):
            self._flush()
            try:
                return self._moonshine.transcribe_without_streaming(chunk.tolist(), SAMPLE_RATE).lines
            except Exception:  # noqa: BLE001 - once more from a clean state, then give up
                if attempt:
                    raise
        return []

    def _flush(self) -> None:
        """Feed Moonshine a little silence and drop the result.

        Its voice-activity state carries over from one call to the next: after some
        chunks the next call starts 'in speech' and yields a bogus short line ("You",
        "The") at its start, or even an ONNX error on a too-short segment."""
        try:
            self._moonshine.transcribe_without_streaming([0.0] * FLUSH_SAMPLES, SAMPLE_RATE)
        except Exception:  # noqa: BLE001 - the flush's own result is thrown away
            pass

    def _align_line(self, audio: np.ndarray, line: _Line, lo: float, hi: float) -> list[Word]:
        """Word times for one line, searched for in [lo, hi] around the line."""
        tokens = line.text.split()
        keys = [self._lexicon.key(t) for t in tokens]
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


def check_language(language: str | None) -> None:
    """Only English: anything else is the caller's mistake (HTTP 400)."""
    if language is None or not language.strip():
        return
    tag = language.strip().lower().replace("_", "-")
    if tag in ENGLISH or tag.startswith("en-"):
        return
    raise ValueError(f"language {language!r} is not supported by the CPU engine "
                     f"({MODEL_NAME} recognises English only); use 'en' or omit it")

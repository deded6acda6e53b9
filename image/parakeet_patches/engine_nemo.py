"""The NeMo engine: Parakeet-TDT words, Sortformer speaker turns, TitaNet voice fingerprints.

Runs in the `parakeet-asr` container (GB10 GPU). nemo and torch are imported inside
load(), so this module imports anywhere; torchaudio is never used (it cannot be built
for the Spark's torch). Checked against the real nemo-toolkit 3.0.0 by tests/real_nemo
(tiny random-weight models built from configs). NeMo APIs used:

- loading: nemo_loading.py (`from_pretrained` for hub names, `restore_from` for files).
- `ASRModel.transcribe(audio=[np.ndarray], batch_size=1, timestamps=True, verbose=False)`:
  1-D float arrays at model.cfg.sample_rate; it takes no other keywords (3.0 raises on
  unknown ones). Parsed by nemo_transcript.py.
- Long inputs: local attention, switched by nemo_attention.py (not NeMo's
  change_attention_model alone, which damages `use_bias: false` checkpoints). No
  `change_subsampling_conv_chunking_factor` call: checkpoints default to 1 (chunk the
  subsampling convolution only when a tensor would overflow), so it was a no-op.
- `SortformerEncLabelModel.diarize(audio=[wav path], batch_size=1,
  include_tensor_outputs=True, verbose=False)`: paths work on every release (only newer
  ones take arrays with `sample_rate`). Parsed by nemo_diarization.py.
- Streaming Sortformer (cfg `streaming_mode: true`): `model.sortformer_modules.{chunk_len,
  chunk_right_context, fifo_len, spkcache_update_period, spkcache_len}` in 80 ms
  frames, then `sortformer_modules._check_streaming_parameters()` (v2.1 model card).
- `EncDecSpeakerLabelModel.infer_segment(np 1-D array)` -> (emb Tensor[1, D], logits
  Tensor[1, classes]); `get_embedding` wants a file path (label_models.py).
"""

from __future__ import annotations

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
    Transcript,
    as_stage,
    relabel_by_first_appearance,
)
from nemo_attention import AttentionSwitch
from nemo_diarization import cap_speakers, frame_probs, l2_normalised, raw_turns, speaker_audio
from nemo_loading import load_model
from nemo_transcript import Clock, transcript_from

T = TypeVar("T")

DEFAULT_ASR_MODEL = "nvidia/parakeet-tdt-0.6b-v3"
DEFAULT_DIAR_MODEL = "nvidia/diar_sortformer_4spk-v1"
DEFAULT_EMBEDDING_MODEL = "nvidia/speakerverification_en_titanet_large"
DEFAULT_LONG_AUDIO_S = 480.0

# "Very high latency" preset of the streaming Sortformer v2.1 card (80 ms frames): the
# most accurate one; latency does not matter for whole files. The card's update period,
# 300, is below chunk_len, which NeMo warns about and replaces by chunk_len: 340 is the
# period that runs either way, said without the warning.
STREAMING_PRESET = {"chunk_len": 340, "chunk_right_context": 40, "fifo_len": 40,
                    "spkcache_update_period": 340, "spkcache_len": 188}
FRAME_S = 0.08  # Parakeet and Sortformer output frames, if the model cfg says nothing
MIN_AUDIO_S = 0.1  # shorter than ~one encoder frame: nothing to hear, and NeMo may choke
FINGERPRINT_MAX_S = 30.0
FINGERPRINT_MIN_S = 0.5  # TitaNet needs some voice; shorter speakers get no fingerprint


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


def _frame_s(model: Any, factor: Any) -> float:
    """Seconds per output frame: the preprocessor's window stride x the subsampling."""
    stride = _cfg(getattr(model, "cfg", None), "preprocessor", "window_stride", default=0.01)
    if not isinstance(factor, int):
        factor = _cfg(getattr(model, "cfg", None), "encoder", "subsampling_factor", default=8)
    return float(stride) * int(factor)


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
        self._attention: AttentionSwitch | None = None
        self._lock = threading.Lock()
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
                self._asr = self._setup_asr(
                    load_model(models.ASRModel, self.asr_model, "ASR_MODEL", device))
            self.asr_loaded = True
            if self._diar is None:
                self._diar = self._setup_diarizer(load_model(
                    models.SortformerEncLabelModel, self.diarizer_model, "DIAR_MODEL", device))
            if self._emb is None:
                self._emb = load_model(models.EncDecSpeakerLabelModel, self.embedding_model,
                                       "EMBEDDING_MODEL", device)
            self.diarizer_loaded = self.embedding_loaded = True

    def _setup_asr(self, model: Any) -> Any:
        """The attention switch for long inputs, and the time stride of word offsets."""
        encoder = getattr(model, "encoder", None)
        if hasattr(encoder, "change_attention_model"):
            self._attention = AttentionSwitch(encoder)
        self._asr_stride_s = _frame_s(model, _cfg(encoder, "subsampling_factor"))
        return model

    def _setup_diarizer(self, model: Any) -> Any:
        """80 ms frames from the cfg; the streaming preset for streaming Sortformer."""
        self._diar_frame_s = _frame_s(model, getattr(model, "output_subsampling_factor", None))
        if getattr(model, "streaming_mode", False):
            self._configure_streaming(model)
        return model

    def _configure_streaming(self, model: Any) -> None:
        modules = getattr(model, "sortformer_modules", None)
        if modules is None:
            raise EngineError("load", f"{self.diarizer_model} has no sortformer_modules")
        for key, value in STREAMING_PRESET.items():
            setattr(modules, key, value)
        try:
            modules._check_streaming_parameters()
        except Exception as exc:
            raise EngineError("load", f"streaming parameters rejected: {exc}") from exc

    # -- the protocol

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        audio = _mono(audio, "transcribe")
        model = self._need(self._asr, "transcribe", self.asr_model)
        seconds = audio.size / SAMPLE_RATE
        if audio.size < MIN_AUDIO_S * SAMPLE_RATE:
            return Transcript("", [], [], language or "en")

        def run() -> Any:
            if self._attention is not None:
                # Full attention's memory grows with length squared; local attention
                # above LONG_AUDIO_S, the model's own (more accurate) below it.
                self._attention.use(local=seconds > self.long_audio_s)
            return model.transcribe(audio=[audio], batch_size=1, timestamps=True,
                                    verbose=False)

        output = self._gpu("transcribe", run)
        return transcript_from(output, Clock(self._asr_stride_s, seconds), language)

    def diarize(self, audio: np.ndarray, max_speakers: int | None = None) -> Diarization:
        audio = _mono(audio, "diarize")
        model = self._need(self._diar, "diarize", self.diarizer_model)
        if audio.size < MIN_AUDIO_S * SAMPLE_RATE:
            return Diarization([])

        def run() -> Any:
            with temp_wav(audio) as path:
                return model.diarize(audio=[path], batch_size=1,
                                     include_tensor_outputs=True, verbose=False)

        lines, probs = self._unpack_diarization(self._gpu("diarize", run))
        turns = raw_turns(lines, probs, self._diar_frame_s, audio.size / SAMPLE_RATE)
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

    @staticmethod
    def _unpack_diarization(output: Any) -> tuple[list[str], np.ndarray | None]:
        """(segment lines, [frames, speakers] probabilities) for our single file."""
        if isinstance(output, tuple) and len(output) == 2:
            segments, probs = output
            return list(segments[0]) if segments else [], frame_probs(probs[0] if probs else None)
        return (list(output[0]) if output else []), None

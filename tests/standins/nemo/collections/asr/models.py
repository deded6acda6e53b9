"""Stand-ins for the three NeMo model classes the engine uses.

Signatures and return types follow the real NeMo (checked against NVIDIA/NeMo):

- `from_pretrained(model_name, refresh_cache, override_config_path, map_location, strict,
  return_config, trainer, save_restore_connector)`: nemo/core/classes/common.py.
- `ASRModel.transcribe(audio, batch_size=4, return_hypotheses=False, num_workers=0,
  channel_selector=None, augmentor=None, verbose=True, timestamps=None, ...)`: a list of
  Hypothesis, one per input; inputs are paths or 1-D np.ndarray/tensors, anything else is a
  ValueError (nemo/collections/asr/parts/mixins/transcription.py,
  _transcribe_input_processing). With timestamps, `hyp.timestamp` = {'word', 'segment',
  'char'} of dicts {'word'|'segment'|'char', 'start_offset', 'end_offset', 'start', 'end'},
  seconds = offset * window_stride * subsampling_factor
  (nemo/collections/asr/parts/utils/timestamp_utils.py: get_words_offsets,
  get_segment_offsets, process_timestamp_outputs; rnnt_models.py passes
  encoder.subsampling_factor and cfg.preprocessor.window_stride).
- `change_attention_model(self_attention_model, att_context_size, update_config)` and
  `change_subsampling_conv_chunking_factor(factor)`: nemo/collections/asr/modules/
  conformer_encoder.py (same validation: local attention needs a context > 0).
- `SortformerEncLabelModel.diarize(audio, batch_size=1, include_tensor_outputs=False,
  postprocessing_yaml=None, num_workers=0, verbose=True, override_config=None)`:
  list (per file) of lists of "begin end speaker_N" strings, plus with
  include_tensor_outputs a list of [1, frames, speakers] probability tensors, 80 ms
  frames (sortformer_diar_models.py _diarize_output_processing; HF model cards).
  `sortformer_modules` carries the streaming parameters (v2.1 model card).
- `EncDecSpeakerLabelModel.infer_segment(segment)` -> (emb [1, 192], logits), a tensor on
  the model's device; `get_embedding(path)` -> emb (label_models.py).
"""

from __future__ import annotations

import math
import os
import wave
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from nemo import _standin
from nemo._standin import busy, maybe_fail, record
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis

SAMPLE_RATE = 16000
FRAME_S = 0.08  # window_stride 0.01 x subsampling_factor 8
EMBEDDING_DIM = 192  # TitaNet-large


class _Config(dict):
    """Attribute and item access, like OmegaConf's DictConfig."""

    def __init__(self, data: dict) -> None:
        super().__init__({k: _Config(v) if isinstance(v, dict) else v for k, v in data.items()})

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc


class _Pretrained:
    prefixes: tuple[str, ...] = ()

    def __init__(self, name: str, map_location: Any) -> None:
        self.name = name
        self.device = torch.device(str(map_location or "cpu"))
        self.training = True

    @classmethod
    def from_pretrained(cls, model_name: str, refresh_cache: bool = False,
                        override_config_path: str | None = None, map_location: Any = None,
                        strict: bool = True, return_config: bool = False, trainer: Any = None,
                        save_restore_connector: Any = None) -> Any:
        record("from_pretrained", cls=cls.__name__, model_name=model_name,
               map_location=None if map_location is None else str(map_location))
        maybe_fail(f"{cls.__name__}.from_pretrained")
        if not model_name.startswith(cls.prefixes):
            raise FileNotFoundError(f"Model {model_name} was not found on Hugging Face or NGC")
        return cls(model_name, map_location)

    def eval(self) -> Any:
        self.training = False
        return self


def _read_wav(path: str) -> np.ndarray:
    """NeMo reads files itself; this one insists on what the engine promises."""
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    with wave.open(path, "rb") as wav:
        if (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) != (1, SAMPLE_RATE, 2):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32767.0


# ---------------------------------------------------------------- Parakeet


class ASRModel(_Pretrained):
    prefixes = ("nvidia/parakeet", "nvidia/canary")

    def __init__(self, name: str, map_location: Any) -> None:
        super().__init__(name, map_location)
        self.cfg = _Config({
            "sample_rate": SAMPLE_RATE,
            "preprocessor": {"window_stride": 0.01, "sample_rate": SAMPLE_RATE},
            "encoder": {"subsampling_factor": 8, "self_attention_model": "rel_pos",
                        "att_context_size": [-1, -1]},
        })
        self.encoder = _Config({"subsampling_factor": 8, "self_attention_model": "rel_pos",
                                "att_context_size": [-1, -1], "conv_chunking_factor": -1})

    def change_attention_model(self, self_attention_model: str | None = None,
                               att_context_size: list[int] | None = None,
                               update_config: bool = True) -> None:
        record("change_attention_model", self_attention_model=self_attention_model,
               att_context_size=att_context_size)
        name = self_attention_model or self.encoder.self_attention_model
        context = list(att_context_size) if att_context_size else self.encoder.att_context_size
        if name not in ("rel_pos", "rel_pos_local_attn", "abs_pos"):
            raise ValueError(f"Not valid self_attention_model: '{name}'!")
        if name == "rel_pos_local_attn" and max(context) <= 0:
            raise ValueError("When using local attention, context size must be set > 0")
        self.encoder.update(self_attention_model=name, att_context_size=context)
        if update_config:
            self.cfg.encoder.update(self_attention_model=name, att_context_size=context)

    def change_subsampling_conv_chunking_factor(self, subsampling_conv_chunking_factor: int) -> None:
        factor = subsampling_conv_chunking_factor
        record("change_subsampling_conv_chunking_factor", factor=factor)
        if factor != -1 and (factor < 1 or factor & (factor - 1)):
            raise ValueError("subsampling_conv_chunking_factor should be -1, 1, or a power of 2")
        self.encoder["conv_chunking_factor"] = factor

    def transcribe(self, audio: Any, batch_size: int = 4, return_hypotheses: bool = False,
                   num_workers: int = 0, channel_selector: Any = None, augmentor: Any = None,
                   verbose: bool = True, timestamps: bool | None = None,
                   override_config: Any = None, **config_kwargs: Any) -> Any:
        with busy("transcribe"):
            clips = self._inputs(audio)
            attention = self.encoder.self_attention_model
            record("transcribe", n=len(clips), kinds=[k for k, _ in clips],
                   seconds=[len(c) / SAMPLE_RATE for _, c in clips], timestamps=timestamps,
                   batch_size=batch_size, attention=attention)
            for _, clip in clips:
                self._check_memory(len(clip) / SAMPLE_RATE, attention)
            if _standin.state.asr_output is not None:
                return _standin.state.asr_output
            return [self._hypothesis(len(clip) / SAMPLE_RATE, bool(timestamps))
                    for _, clip in clips]

    @staticmethod
    def _inputs(audio: Any) -> list[tuple[str, np.ndarray]]:
        items = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        if not items:
            raise ValueError("Input `audio` is empty")
        clips = []
        for item in items:
            if isinstance(item, str):
                clips.append(("path", _read_wav(item)))
            elif isinstance(item, (np.ndarray, torch.Tensor)):
                array = item if isinstance(item, np.ndarray) else item.numpy()
                if array.ndim != 1:
                    raise ValueError("expected a 1-D (mono) audio array")
                clips.append((f"ndarray:{array.dtype}", array))
            else:
                raise ValueError(f"Input `audio` is of type {type(item)}. Only `str` (path to "
                                 "audio file), `np.ndarray`, and `torch.Tensor` are supported")
        return clips

    @staticmethod
    def _check_memory(seconds: float, attention: str) -> None:
        limit = _standin.state.full_attention_limit_s
        if limit is not None and attention != "rel_pos_local_attn" and seconds > limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 31.50 GiB")

    def _hypothesis(self, seconds: float, timestamps: bool) -> Hypothesis:
        frames = seconds / FRAME_S
        words = [(w, s, e) for w, s, e in _standin.state.heard if e <= frames + 1e-9]
        hyp = Hypothesis(score=0.0, y_sequence=torch.tensor(list(range(len(words)))),
                         text=" ".join(w for w, _, _ in words), length=int(frames))
        if timestamps:
            hyp.timestamp = _timestamps(words, _standin.state.convert_offsets)
        return hyp


def _stamp(key: str, text: Any, start: int, end: int, convert: bool) -> dict:
    stamp = {key: text, "start_offset": start, "end_offset": end}
    if convert:  # process_timestamp_outputs: offset * window_stride * subsampling_factor
        stamp.update(start=start * 0.01 * 8, end=end * 0.01 * 8)
    return stamp


def _timestamps(words: list[tuple[str, int, int]], convert: bool) -> dict[str, list[dict]]:
    """Word, segment (split after . ? !, as get_segment_offsets) and char stamps."""
    word_stamps = [_stamp("word", w, s, e, convert) for w, s, e in words]
    segments, current = [], []
    for word in words:
        current.append(word)
        if word[0].endswith((".", "?", "!")):
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    segment_stamps = [_stamp("segment", " ".join(w for w, _, _ in seg), seg[0][1], seg[-1][2],
                             convert) for seg in segments]
    char_stamps = [_stamp("char", [w], s, e, convert) for w, s, e in words]
    return {"word": word_stamps, "segment": segment_stamps, "char": char_stamps}


# ---------------------------------------------------------------- Sortformer


class _SortformerModules:
    """Streaming knobs in 80 ms frames; defaults as diar_streaming_sortformer_4spk-v2 ships."""

    def __init__(self) -> None:
        self.chunk_len = 188
        self.chunk_left_context = 1
        self.chunk_right_context = 1
        self.fifo_len = 0
        self.spkcache_update_period = 188
        self.spkcache_len = 188
        self.spkcache_sil_frames_per_spk = 3
        self.n_spk = 4

    def _check_streaming_parameters(self) -> None:
        """The real check (sortformer_modules.py): integers, each at least a minimum."""
        minimum = {"spkcache_len": (1 + self.spkcache_sil_frames_per_spk) * self.n_spk,
                   "fifo_len": 0, "chunk_len": 1, "spkcache_update_period": 1,
                   "chunk_left_context": 0, "chunk_right_context": 0}
        record("_check_streaming_parameters",
               **{name: getattr(self, name) for name in minimum})
        for name, least in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, int):
                raise TypeError(f"Parameter '{name}' must be an integer, but got {value}")
            if value < least:
                raise ValueError(f"Parameter '{name}' must be at least {least}, but got {value}.")


class SortformerEncLabelModel(_Pretrained):
    prefixes = ("nvidia/diar_sortformer", "nvidia/diar_streaming_sortformer")

    def __init__(self, name: str, map_location: Any) -> None:
        super().__init__(name, map_location)
        self._cfg = _Config({"encoder": {"subsampling_factor": 8}, "max_num_of_spks": 4,
                             "preprocessor": {"window_stride": 0.01, "sample_rate": SAMPLE_RATE}})
        self.cfg = self._cfg
        self.output_subsampling_factor = 8
        self.streaming_mode = "streaming" in name
        self.sortformer_modules = _SortformerModules()

    def diarize(self, audio: Any, batch_size: int = 1, include_tensor_outputs: bool = False,
                postprocessing_yaml: str | None = None, num_workers: int = 0,
                verbose: bool = True, override_config: Any = None) -> Any:
        with busy("diarize"):
            paths = [audio] if isinstance(audio, str) else list(audio)
            if not all(isinstance(p, str) for p in paths):
                # the v1-era signature has no sample_rate: arrays are not accepted
                raise ValueError("diarize() takes audio file paths or a manifest")
            clips = [_read_wav(p) for p in paths]
            record("diarize", paths=paths, samples=[len(c) for c in clips],
                   batch_size=batch_size, include_tensor_outputs=include_tensor_outputs)
            probs = [self._probs(len(c) / SAMPLE_RATE) for c in clips]
            lines = [_standin.state.diar_lines or _lines(p) for p in probs]
            if include_tensor_outputs:
                return lines, [torch.Tensor(p[None, :, :]) for p in probs]
            return lines

    @staticmethod
    def _probs(seconds: float) -> np.ndarray:
        """[frames, 4] activity for a clip: the scripted one, cut or zero-padded to fit."""
        frames = max(1, math.ceil(seconds / FRAME_S))
        out = np.zeros((frames, 4), dtype=np.float32)
        scripted = _standin.state.diar_probs
        if scripted is not None:
            scripted = np.asarray(scripted, dtype=np.float32)[:frames, :4]
            out[: scripted.shape[0], : scripted.shape[1]] = scripted
        return out


def _lines(probs: np.ndarray) -> list[str]:
    """"begin end speaker_N" per run of frames above 0.5, sorted by begin."""
    lines = []
    for spk in range(probs.shape[1]):
        for start, end in _runs(probs[:, spk] > 0.5):
            lines.append((start * FRAME_S, end * FRAME_S, spk))
    return [f"{a:.2f} {b:.2f} speaker_{s}" for a, b, s in sorted(lines)]


def _runs(active: Iterable[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    flags = list(active)
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


# ---------------------------------------------------------------- TitaNet


class EncDecSpeakerLabelModel(_Pretrained):
    prefixes = ("nvidia/speakerverification", "titanet", "ecapa")

    def infer_segment(self, segment: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        with busy("infer_segment"):
            segment = np.asarray(segment)
            if segment.ndim != 1:  # the real one wraps it as np.array([segment])
                raise ValueError("infer_segment expects one 1-D segment")
            record("infer_segment", samples=segment.shape[0], dtype=str(segment.dtype),
                   checksum=float(np.abs(segment).sum()))
            emb = _voice_print(segment.astype(np.float32))
            logits = np.zeros((1, 16), dtype=np.float32)
            return torch.Tensor(emb[None, :], self.device), torch.Tensor(logits, self.device)

    def get_embedding(self, path2audio_file: str) -> torch.Tensor:
        emb, _ = self.infer_segment(_read_wav(path2audio_file))
        return emb


def _voice_print(segment: np.ndarray) -> np.ndarray:
    """A deterministic 192-d "embedding": the clip's mean power spectrum, not normalised
    (TitaNet's embeddings are not unit length either), so different tones differ."""
    frame = 2 * (EMBEDDING_DIM - 1)
    usable = len(segment) // frame * frame
    if usable == 0:
        raise RuntimeError("segment shorter than one analysis window")
    frames = segment[:usable].reshape(-1, frame)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0)[:EMBEDDING_DIM]
    return (spectrum * 3.0 + 1e-3).astype(np.float32)

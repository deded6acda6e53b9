"""GE2E speaker encoder (resemblyzer's VoiceEncoder) in plain numpy.

The weights are resemblyzer's, shipped beside this file as `ge2e_weights.npz` (the
resemblyzer package itself needs torch and librosa), and the network is re-implemented:
40-channel mel power spectrogram (25 ms / 10 ms at 16 kHz, not log) -> 3-layer
LSTM (hidden 256) -> linear 256 + ReLU -> L2 normalisation, on partial utterances
of 160 frames. Everything is read-only after load(), so one instance can be
shared between threads.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np

from engine_base import SAMPLE_RATE, EngineError

# resemblyzer/hparams.py
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms step
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s partial utterances
HIDDEN = 256
N_LAYERS = 3
NORM_TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1

# The VoiceEncoder's state dict, converted once from resemblyzer 0.1.4's pretrained.pt
# (Apache-2.0) to float32 arrays, unchanged: shipped here so that the CPU engine needs
# no package of torch-era dependencies. The sha256 guards against a damaged file.
WEIGHTS = Path(__file__).with_name("ge2e_weights.npz")
WEIGHTS_SHA256 = "d56a0949d1b849d8bb8b8372416e5bc9c75a215e9a2c0af81d487e506c10f9be"


# ---------------------------------------------------------------- weights file


def load_encoder_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The VoiceEncoder's state dict (lstm.*, linear.*) as float32 numpy arrays."""
    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise EngineError("load", f"speaker encoder weights {path} are missing")
    if path == WEIGHTS and hashlib.sha256(path.read_bytes()).hexdigest() != WEIGHTS_SHA256:
        raise EngineError("load", f"speaker encoder weights {path} are damaged "
                                  "(sha256 differs): restore the file from the repository")
    with np.load(path, allow_pickle=False) as archive:
        return {k: np.ascontiguousarray(archive[k], dtype=np.float32) for k in archive.files
                if k.startswith(("lstm.", "linear."))}


# ---------------------------------------------------------------- features


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa htk=False): linear below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
    return hz


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (fmin 0, fmax sr/2,
    htk=False, norm='slaney'): triangles, each scaled to unit area. Shape (n_mels, 1+n_fft//2)."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0],
                                   _hz_to_mel(np.array([sr / 2.0]))[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


_MEL_BASIS = mel_filterbank()
# periodic Hann window, as scipy.signal.get_window("hann", N_FFT) used by librosa
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Mel power spectrogram as librosa.feature.melspectrogram (center=True, zero
    padding as librosa >= 0.10). Shape (1 + len(wav) // HOP, N_MELS), frame t centred
    on sample t * HOP."""
    padded = np.pad(np.asarray(wav, dtype=np.float32), N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0]))
    out = np.empty((n_frames, N_MELS), np.float32)
    for start in range(0, n_frames, 8192):  # blocks: the complex FFT of an hour is GBs
        spec = np.fft.rfft(frames[start:start + 8192] * _WINDOW, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
        out[start:start + 8192] = power @ _MEL_BASIS.T
    return out


def normalize_volume(wav: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Raise the level to -30 dBFS (never lower it), as resemblyzer's preprocessing.
    The mel input is not logged, so the network sees absolute level: this matters."""
    ref = wav if reference is None else reference
    rms = float(np.sqrt(np.mean((ref.astype(np.float64) * INT16_MAX) ** 2))) if len(ref) else 0.0
    if rms <= 0.0:
        return wav
    change_db = NORM_TARGET_DBFS - 20 * np.log10(rms / INT16_MAX)
    return wav if change_db < 0 else (wav * 10 ** (change_db / 20)).astype(np.float32)


def partial_slices(n_samples: int, rate: float = 1.3,
                   min_coverage: float = 0.75) -> list[tuple[int, int]]:
    """resemblyzer's compute_partial_slices: 160-frame mel windows, `rate` per second,
    the last one kept if at least `min_coverage` of it is real audio. Frame ranges."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / rate) / HOP))
    slices = [(i, i + PARTIAL_FRAMES)
              for i in range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)]
    coverage = (n_samples - slices[-1][0] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(slices) > 1:
        slices = slices[:-1]
    return slices


# ---------------------------------------------------------------- network


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warnings, and faster than 1 / (1 + exp(-x))
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _lstm_layer(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """One LSTM layer over a batch (B, T, in) -> all hidden states (B, T, H).
    torch gate order: input, forget, cell, output."""
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    # the input projection of every step at once: one big matmul instead of T small ones
    gates_x = (x.reshape(batch * steps, -1) @ w_ih.T + bias).reshape(batch, steps, 4 * hidden)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    h = np.zeros((batch, hidden), np.float32)
    c = np.zeros((batch, hidden), np.float32)
    out = np.empty((batch, steps, hidden), np.float32)
    for t in range(steps):
        g = gates_x[:, t] + h @ w_hh_t
        i, f = _sigmoid(g[:, :hidden]), _sigmoid(g[:, hidden:2 * hidden])
        cell, o = np.tanh(g[:, 2 * hidden:3 * hidden]), _sigmoid(g[:, 3 * hidden:])
        c = f * c + i * cell
        h = o * np.tanh(c)
        out[:, t] = h
    return out


class SpeakerEncoder:
    """resemblyzer's VoiceEncoder forward pass in numpy; 256-d L2-normalised embeddings."""

    name = "resemblyzer-ge2e"

    _shared: SpeakerEncoder | None = None  # the bundled weights, loaded once
    _lock = threading.Lock()

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.layers = [(weights[f"lstm.weight_ih_l{k}"], weights[f"lstm.weight_hh_l{k}"],
                        weights[f"lstm.bias_ih_l{k}"] + weights[f"lstm.bias_hh_l{k}"])
                       for k in range(N_LAYERS)]
        self.linear_w = np.ascontiguousarray(weights["linear.weight"].T)
        self.linear_b = weights["linear.bias"]

    @classmethod
    def load(cls, path: str | Path | None = None) -> SpeakerEncoder:
        """Read the bundled weights once (5.7 MB); later calls return the same instance."""
        with cls._lock:
            if path is not None:
                return cls(load_encoder_weights(path))
            if cls._shared is None:
                try:
                    cls._shared = cls(load_encoder_weights())
                except EngineError:
                    raise
                except Exception as exc:  # corrupt or unexpected checkpoint
                    raise EngineError("load", f"speaker encoder weights: {exc}") from exc
            return cls._shared

    def embed_mels(self, mels: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Embeddings of a batch of mel windows (B, T, 40), right-padded; `lengths` gives
        each window's real frame count (the LSTM is causal, so padding after it is harmless)."""
        batch, steps, _ = mels.shape
        lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
        x = mels.astype(np.float32)
        for w_ih, w_hh, bias in self.layers:
            x = _lstm_layer(x, w_ih, w_hh, bias)
        last = x[np.arange(batch), lengths - 1]
        raw = np.maximum(last @ self.linear_w + self.linear_b, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return raw / np.maximum(norms, 1e-12)

    def embed_frame_windows(self, mel: np.ndarray, windows: list[tuple[int, int]],
                            batch_size: int = 96) -> np.ndarray:
        """Embed frame ranges of one mel spectrogram. Windows are sorted by length and
        batched so that padding waste stays small."""
        out = np.zeros((len(windows), HIDDEN), np.float32)
        windows = [(min(max(0, s), len(mel) - 1), e) for s, e in windows]  # past the end
        lengths = np.array([max(1, min(e, len(mel)) - s) for s, e in windows])
        order = np.argsort(lengths, kind="stable")
        for chunk in np.array_split(order, max(1, int(np.ceil(len(order) / batch_size)))):
            if len(chunk) == 0:
                continue
            steps = int(lengths[chunk].max())
            batch = np.zeros((len(chunk), steps, N_MELS), np.float32)
            for row, idx in enumerate(chunk):
                start = windows[idx][0]
                batch[row, : lengths[idx]] = mel[start: start + lengths[idx]]
            out[chunk] = self.embed_mels(batch, lengths[chunk])
        return out

    def embed_windows(self, audio: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
        """One embedding per (start, end) sample range of `audio`, shape (n, 256).
        The level is normalised over the windows' audio together, so every window
        gets the same gain."""
        if not windows:
            return np.zeros((0, HIDDEN), np.float32)
        audio = np.asarray(audio, dtype=np.float32)
        speech = np.concatenate([audio[s:e] for s, e in windows])
        mel = mel_spectrogram(normalize_volume(audio, reference=speech))
        frames = [(s // HOP, s // HOP + max(1, (e - s) // HOP)) for s, e in windows]
        return self.embed_frame_windows(mel, frames)

    def embed_utterance(self, audio: np.ndarray) -> np.ndarray:
        """resemblyzer's embed_utterance (after its volume normalisation): mean of the
        partial embeddings (1.6 s, rate 1.3/s), L2-normalised. Shape (256,)."""
        wav = normalize_volume(np.asarray(audio, dtype=np.float32))
        slices = partial_slices(len(wav))
        needed = slices[-1][1] * HOP
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = mel_spectrogram(wav)
        partials = self.embed_mels(np.stack([mel[s:e] for s, e in slices]))
        mean = partials.mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

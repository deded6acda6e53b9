"""The recogniser's front end: spectral shaping and stationary-noise reduction.

Both only change what the recogniser hears; word alignment and diarization use the
original audio. Chosen for Moonshine tiny (used before Whisper), where they took the
mean WER over 24 generated 3- and 4-speaker conversations from 28.7% to 24.4%. With
Whisper tiny.en on the same files (beam 5, no sampling fallback): 7.7% shaped, 6.8%
shaped and denoised; shaping also took 9.7% to 8.6% when each window was decoded
without the previous one's text.

Shaping: a 4th-order high-pass at 250 Hz (the voices' low fundamental and hum carry
no words) and a +6 dB high shelf at 3 kHz (consonants). A low-pass at 5 kHz doubled
Moonshine's errors, so the top band matters most.

Noise reduction (spectral subtraction): a steady floor (a fan, a mic's hiss) costs
words: with the generator's white noise at -50 dBFS, Moonshine's WER went from 20% on
clean lines to over 30%. The noise spectrum is the mean spectrum of the file's
quietest frames; each block's magnitudes lose that much (never below FLOOR of
themselves), phases are kept. A file without clear pauses is left alone: there its
quietest frames are speech, not noise.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from engine_base import SAMPLE_RATE

N = 512  # 32 ms at 16 kHz
HOP = N // 4
QUIET_PERCENTILE = 10
MIN_CONTRAST_DB = 20.0  # speech this far above the quiet frames: they are pauses
MAX_NOISE_FRAMES = 2000  # enough for a mean, bounded memory for a 10-minute input
FLOOR = 0.1
BLOCK = 1024 * HOP  # ~8 s per STFT: a 10-minute input in one would take ~1 GB
WINDOW = signal.get_window("hann", N)
HIGH_PASS_HZ = 250.0
SHELF_HZ, SHELF_DB = 3000.0, 6.0
SHELF_SLOPE = 0.5  # gentle, as sox's `treble` default


def _high_shelf(gain_db: float, freq: float, rate: int, slope: float) -> np.ndarray:
    """A high-shelf biquad as second-order sections (RBJ audio EQ cookbook)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / rate
    cos = np.cos(w0)
    alpha = np.sin(w0) / 2 * np.sqrt((a + 1 / a) * (1 / slope - 1) + 2)
    q = 2 * np.sqrt(a) * alpha
    b = [a * ((a + 1) + (a - 1) * cos + q), -2 * a * ((a - 1) + (a + 1) * cos),
         a * ((a + 1) + (a - 1) * cos - q)]
    den = [(a + 1) - (a - 1) * cos + q, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - q]
    return signal.tf2sos(b, den)


def shaping_filter(rate: int = SAMPLE_RATE) -> np.ndarray:
    """High-pass then high shelf, as second-order sections for `signal.sosfilt`."""
    high_pass = signal.butter(4, HIGH_PASS_HZ, "highpass", fs=rate, output="sos")
    return np.concatenate([high_pass, _high_shelf(SHELF_DB, SHELF_HZ, rate, SHELF_SLOPE)])


SHAPING = shaping_filter()


def shape(audio: np.ndarray) -> np.ndarray:
    """The audio through SHAPING (causal: the delay is ~2 ms in the speech band)."""
    if len(audio) == 0:
        return audio
    return signal.sosfilt(SHAPING, audio).astype(np.float32)


def noise_profile(audio: np.ndarray) -> np.ndarray | None:
    """Mean magnitude spectrum of the quietest frames, scaled as scipy's stft does;
    None when the file has no clear pauses to learn it from."""
    frames = (len(audio) - N) // HOP
    if frames < 50:
        return None
    starts = np.arange(frames) * HOP
    power = np.array([np.mean(np.square(audio[s:s + N], dtype=np.float64)) for s in starts])
    level = 10 * np.log10(power + 1e-12)
    quiet = np.percentile(level, QUIET_PERCENTILE)
    if np.percentile(level, 95) - quiet < MIN_CONTRAST_DB:
        return None
    chosen = starts[level <= quiet]
    chosen = chosen[np.linspace(0, len(chosen) - 1, min(len(chosen), MAX_NOISE_FRAMES),
                                dtype=int)]
    spectra = np.abs(np.fft.rfft(np.stack([audio[s:s + N] for s in chosen]) * WINDOW, axis=1))
    return spectra.mean(axis=0) / WINDOW.sum()


def reduce_noise(audio: np.ndarray, profile: np.ndarray | None) -> np.ndarray:
    """The audio with the profile's noise subtracted (unchanged without a profile).

    Block by block, each with N samples of context on both sides that are cut off
    again; blocks start on the hop grid, so the result equals one whole-file STFT."""
    if profile is None or len(audio) < N:
        return audio
    out = np.empty(len(audio), dtype=np.float32)
    for start in range(0, len(audio), BLOCK):
        lo, hi = max(0, start - N), min(len(audio), start + BLOCK + N)
        cleaned = _subtract(audio[lo:hi], profile)
        out[start:min(start + BLOCK, len(audio))] = cleaned[start - lo: start - lo + BLOCK]
    return out


def _subtract(audio: np.ndarray, profile: np.ndarray) -> np.ndarray:
    _, _, spec = signal.stft(audio, nperseg=N, noverlap=N - HOP, window=WINDOW)
    magnitude = np.abs(spec)
    cleaned = np.maximum(magnitude - profile[:, None], FLOOR * magnitude)
    _, out = signal.istft(cleaned * np.exp(1j * np.angle(spec)), nperseg=N,
                          noverlap=N - HOP, window=WINDOW)
    return out[: len(audio)].astype(np.float32)

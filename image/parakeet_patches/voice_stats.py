"""A second opinion on "are these two clusters one voice?": the BIC on MFCC frames.

GE2E centroids (cpu_diarize.py) miss two close voices now and then: over seeds 1-30
of the generated conversations, en-us+m3 and en-gb+m1 sat 0.062 apart in one file,
under the distance that keeps one voice from splitting elsewhere. The Bayesian
information criterion asks instead whether one Gaussian explains the two clusters'
short-time spectra (13 MFCCs per 10 ms of speech) as well as two do (Chen and
Gopalakrishnan, 1998). Over 100 generated files of 1-4 speakers (seeds 1-20 and
1-30), every speaker count came out right for any DISTINCT_BIC from 0.30 to 0.35
(below, splits of one voice pass; above, seed 12's close pair fails); it sits in the
middle. Like the centroid threshold, it is tuned on espeak-ng voices.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

from engine_base import SAMPLE_RATE

HOP = SAMPLE_RATE // 100  # 10 ms
WIDTH = SAMPLE_RATE // 40  # 25 ms
N_FFT = 512
N_MELS = 26
N_COEFFS = 13  # c1..c13: c0 (loudness) says more about the microphone than the voice
DISTINCT_BIC = 0.325  # ΔBIC per frame above which two clusters are two voices
# 20 s of speech per cluster: ΔBIC per frame runs high on small clusters (with 1 s, a
# 35 s conversation had one of its three voices split); the close pair that needed
# this test had >= 25 s each.
MIN_FRAMES = 2000


def mel_filters(rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular filters evenly spaced on the mel scale from 100 Hz to 7.6 kHz."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    bins = np.floor((n_fft + 1) * hz(np.linspace(mel(100), mel(7600), n_mels + 2)) / rate)
    bins = bins.astype(int)
    filters = np.zeros((n_mels, n_fft // 2 + 1))
    for i, (lo, mid, hi) in enumerate(zip(bins, bins[1:], bins[2:])):
        filters[i, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        filters[i, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return filters


FILTERS = mel_filters()


def mfcc(audio: np.ndarray, block: int = 6000) -> np.ndarray:
    """13 cepstral coefficients per 10 ms frame (frames x 13), computed in blocks."""
    frames = max(0, (len(audio) - WIDTH) // HOP + 1)
    window = np.hamming(WIDTH)
    out = np.empty((frames, N_COEFFS), np.float32)
    for first in range(0, frames, block):
        starts = HOP * np.arange(first, min(first + block, frames))
        idx = starts[:, None] + np.arange(WIDTH)[None, :]
        power = np.abs(np.fft.rfft(audio[idx] * window, N_FFT)) ** 2
        cepstra = dct(np.log(power @ FILTERS.T + 1e-10), norm="ortho")
        out[first: first + len(idx)] = cepstra[:, 1: N_COEFFS + 1]
    return out


class ClusterStats:
    """Sufficient statistics (count, sum, sum of outer products) of frames per window."""

    def __init__(self, features: np.ndarray, owned: list[np.ndarray]) -> None:
        self.count = np.array([len(idx) for idx in owned], np.float64)
        self.total = np.array([features[idx].sum(0) for idx in owned], np.float64)
        self.outer = np.array([features[idx].T.astype(np.float64) @ features[idx] for idx in owned])

    def _pooled(self, mask: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        return self.count[mask].sum(), self.total[mask].sum(0), self.outer[mask].sum(0)

    def delta_bic(self, a: np.ndarray, b: np.ndarray) -> float:
        """ΔBIC per frame of modelling windows `a` and `b` apart rather than together
        (-inf when either has too few frames to tell: it never says "distinct")."""
        (na, sa, oa), (nb, sb, ob) = self._pooled(a), self._pooled(b)
        if min(na, nb) < MIN_FRAMES:
            return float("-inf")
        n = na + nb
        return 0.5 * (n * _logdet(n, sa + sb, oa + ob) - na * _logdet(na, sa, oa)
                      - nb * _logdet(nb, sb, ob)) / n


def _logdet(n: float, total: np.ndarray, outer: np.ndarray) -> float:
    mean = total / n
    cov = outer / n - np.outer(mean, mean) + 1e-6 * np.eye(len(mean))
    return float(np.linalg.slogdet(cov)[1])


def owned_frames(spans: list[tuple[int, int]], speech: np.ndarray) -> list[np.ndarray]:
    """For each window (sample spans, in time order), the 10 ms speech frames nearer its
    middle than any other window's: overlapping windows do not count a frame twice."""
    mids = [(s + e) / 2 for s, e in spans]
    out = []
    for i, (start, end) in enumerate(spans):
        lo = max(start, (mids[i - 1] + mids[i]) / 2) if i else start
        hi = min(end, (mids[i] + mids[i + 1]) / 2) if i + 1 < len(spans) else end
        idx = np.arange(int(lo // HOP), min(int(hi // HOP), len(speech)))
        out.append(idx[speech[idx]])
    return out


def window_stats(audio: np.ndarray, speech_flags: np.ndarray, vad_frame: int,
                 spans: list[tuple[int, int]]) -> ClusterStats:
    """MFCC statistics of each window's own speech frames; `speech_flags` is the
    voice-activity decision per `vad_frame` samples."""
    features = mfcc(audio)
    speech = np.repeat(speech_flags.astype(bool), vad_frame // HOP)[: len(features)]
    speech = np.pad(speech, (0, len(features) - len(speech)))
    return ClusterStats(features, owned_frames(spans, speech))

"""The MFCC ΔBIC test that tells two close voices apart when GE2E centroids do not."""

from __future__ import annotations

import numpy as np
import pytest

import voice_stats as vs
from cpu_diarize import cluster_windows
from speaker_profiles import PROFILES
from engine_base import SAMPLE_RATE

DIM = vs.N_COEFFS
GE2E = PROFILES["ge2e"]  # the synthetic embeddings below sit on GE2E's scale


def _stats(groups: list[np.ndarray]) -> vs.ClusterStats:
    """One window per array of frames."""
    features = np.vstack(groups)
    bounds = np.cumsum([0] + [len(g) for g in groups])
    return vs.ClusterStats(features, [np.arange(a, b) for a, b in zip(bounds, bounds[1:])])


def _frames(rng: np.random.Generator, n: int, shift: float, scale: float = 1.0) -> np.ndarray:
    return (rng.normal(shift, scale, (n, DIM))).astype(np.float32)


def test_mfcc_has_thirteen_finite_coefficients_per_10_ms() -> None:
    audio = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE * 2).astype(np.float32)
    features = vs.mfcc(audio, block=50)  # several blocks
    assert features.shape == ((len(audio) - vs.WIDTH) // vs.HOP + 1, DIM)
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features, vs.mfcc(audio), rtol=1e-5, atol=1e-4)
    assert vs.mfcc(np.zeros(100, np.float32)).shape == (0, DIM)


def test_mfcc_tells_a_low_tone_from_a_high_one() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    low, high = (vs.mfcc(np.sin(2 * np.pi * f * t).astype(np.float32)).mean(0) for f in (300, 3000))
    assert np.linalg.norm(low - high) > 10


def test_delta_bic_is_low_for_one_source_and_high_for_two() -> None:
    rng = np.random.default_rng(1)
    same = _stats([_frames(rng, 2500, 0.0), _frames(rng, 2500, 0.0)])
    apart = _stats([_frames(rng, 2500, 0.0), _frames(rng, 2500, 1.0, 1.5)])
    a, b = np.array([True, False]), np.array([False, True])
    assert same.delta_bic(a, b) < 0.05
    assert apart.delta_bic(a, b) > vs.DISTINCT_BIC


def test_delta_bic_cannot_call_too_few_frames_distinct() -> None:
    rng = np.random.default_rng(2)
    stats = _stats([_frames(rng, vs.MIN_FRAMES - 1, 0.0), _frames(rng, 2500, 5.0)])
    assert stats.delta_bic(np.array([True, False]), np.array([False, True])) == -np.inf


def test_overlapping_windows_own_each_speech_frame_once() -> None:
    hop = vs.HOP
    spans = [(0, 150 * hop), (75 * hop, 225 * hop), (150 * hop, 300 * hop)]
    speech = np.ones(300, bool)
    speech[100:110] = False
    owned = vs.owned_frames(spans, speech)
    together = np.concatenate(owned)
    assert len(together) == len(set(together.tolist())) == 290
    assert not set(range(100, 110)) & set(together.tolist())
    for (start, end), idx in zip(spans, owned):
        assert idx.min() >= start // hop and idx.max() < end // hop


def _close_voices(rng: np.random.Generator, n: int = 20) -> np.ndarray:
    """Two groups of unit embeddings ~0.02 apart in cosine distance: under the
    centroid threshold, but cleanly separable by k-means."""
    base, axis = np.eye(256)[0], np.eye(256)[1]
    groups = [base + sign * 0.1 * axis + rng.normal(0, 0.004, (n, 256)) for sign in (1, -1)]
    emb = np.vstack(groups)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_close_voices_are_split_only_when_their_spectra_differ() -> None:
    rng = np.random.default_rng(3)
    emb = _close_voices(rng)
    assert cluster_windows(emb, 8, profile=GE2E).max() == 0  # the centroid test alone: one speaker
    differ = _stats([_frames(rng, 120, 0.0) for _ in range(20)]
                    + [_frames(rng, 120, 1.0, 1.5) for _ in range(20)])
    labels = cluster_windows(emb, 8, differ, GE2E)
    assert labels.max() == 1 and len(set(labels[:20])) == 1 and labels[0] != labels[20]
    alike = _stats([_frames(rng, 120, 0.0) for _ in range(40)])
    assert cluster_windows(emb, 8, alike, GE2E).max() == 0


@pytest.mark.parametrize("n", [0, 1])
def test_delta_bic_needs_frames_on_both_sides(n: int) -> None:
    rng = np.random.default_rng(4)
    stats = _stats([_frames(rng, n, 0.0), _frames(rng, 500, 0.0)])
    assert stats.delta_bic(np.array([True, False]), np.array([False, True])) == -np.inf

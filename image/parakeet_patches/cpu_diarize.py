"""Speaker diarization on CPU without torch: VAD -> window embeddings -> clustering
-> speaker turns.

1. webrtcvad marks 30 ms speech frames; gaps shorter than the profile's fill_gap_s
   are filled and tiny blips dropped, giving speech regions (a speaker change is still
   possible inside one). Real people pause between words: a region must span those
   pauses, or a speaker of short phrases never gets a window long enough to cluster.
2. Each region is cut into 1.5 s windows (0.75 s hop) embedded with the speaker
   encoder (campplus.py: CAM++ on onnxruntime, the default; or speaker_encoder.py:
   GE2E in numpy, CPU_SPEAKER_MODEL=ge2e); each embedding is smoothed with its
   neighbours in the same region.
3. Windows of at least MIN_CLUSTER_WINDOW_S are clustered. For k = 2, 3, ... the best
   k-way partition (spectral clustering on the refined affinity of Wang et al. 2018,
   "Speaker diarization with LSTM", or k-means on the embeddings, both refined by a
   few k-means steps) is kept while all its clusters are pairwise distinct voices
   (centroid distance over a threshold that grows for small clusters, or, for two
   close voices, an MFCC ΔBIC over DISTINCT_BIC: voice_stats.py); the first k
   that fails stops the search. One voice therefore gives one speaker, and a close
   voice is not hidden by a far one, two things the eigen-gap count got wrong.
4. Every window is scored against the speaker centroids; each speech frame averages
   the scores of the windows covering it, takes the best speaker, fragments shorter
   than MIN_TURN_S are absorbed, and runs become turns (never across a VAD silence).
5. A speaker's print (fingerprints) is, for CAM++, one embedding of up to
   PRINT_SECONDS of their speech (whole utterances score far better than 1.5 s
   windows); for GE2E, the mean of their window embeddings.

Each encoder's figures (PROFILES) were chosen on real people's recordings with
bench/real_diarization.py (CAM++) or on espeak-ng voices (GE2E, kept for comparison).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import webrtcvad

from engine_base import (SAMPLE_RATE, Diarization, EngineError, Turn, as_stage,
                         relabel_by_first_appearance)
from speaker_profiles import Encoder, Profile, profile_named
from voice_stats import DISTINCT_BIC, ClusterStats, window_stats


VAD_MODE = 2  # webrtcvad aggressiveness 0..3
FRAME = 480  # 30 ms VAD frames
FRAME_S = FRAME / SAMPLE_RATE
MIN_SPEECH_S = 0.12  # speech blips shorter than this are noise
WINDOW_S = 1.5
HOP_S = 0.75
MIN_CLUSTER_WINDOW_S = 0.9  # shorter windows are too noisy to shape the clusters
MIN_WINDOW_S = 0.2  # shorter speech is labelled from its neighbours only
MIN_TURN_S = 0.3
SMOOTH_WEIGHT = 1.0  # weight of each neighbouring window when smoothing embeddings
MAX_SPEAKERS = 8
MAX_SPECTRAL_WINDOWS = 1500  # beyond (~19 min of speech) the O(n^3) affinity is skipped
PRUNE_KEEP = 0.25  # row-wise affinity pruning: keep this share of each row
PRUNE_FACTOR = 0.01
PRINT_SECONDS = 30.0  # of a speaker's speech behind a CAM++ print (its longest turns):
# the calibration's recordings held 8-30 s; more costs memory and time, not accuracy


@dataclass
class _Windows:
    """Embedded windows: sample ranges, the speech region each lies in, embeddings."""

    spans: list[tuple[int, int]]
    region: np.ndarray
    emb: np.ndarray


# ---------------------------------------------------------------- VAD


def speech_frames(audio: np.ndarray, mode: int = VAD_MODE) -> np.ndarray:
    """webrtcvad decision per 30 ms frame (a new Vad per call: it is not thread-safe)."""
    vad = webrtcvad.Vad(mode)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    n = len(pcm) // FRAME
    return np.array([vad.is_speech(pcm[i * FRAME:(i + 1) * FRAME].tobytes(), SAMPLE_RATE)
                     for i in range(n)], dtype=bool)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, value) of each run of equal values."""
    if len(values) == 0:
        return []
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(values)]])
    return [(int(s), int(e), int(values[s])) for s, e in zip(starts, ends)]


def speech_regions(flags: np.ndarray, fill_gap_s: float = 0.4) -> list[tuple[int, int]]:
    """Frame ranges of speech after filling gaps under fill_gap_s and dropping blips."""
    flags = flags.copy()
    for start, end, value in _runs(flags.astype(int)):
        inner = 0 < start and end < len(flags)
        if value == 0 and inner and (end - start) * FRAME_S < fill_gap_s:
            flags[start:end] = True
    return [(s, e) for s, e, v in _runs(flags.astype(int))
            if v == 1 and (e - s) * FRAME_S >= MIN_SPEECH_S]


# ---------------------------------------------------------------- windows


def region_windows(start: int, end: int, hop_s: float = HOP_S) -> list[tuple[int, int]]:
    """Sample ranges of WINDOW_S windows every hop_s over [start, end), the last one
    flush with the end; a region shorter than a window is one window."""
    win, hop = int(WINDOW_S * SAMPLE_RATE), int(hop_s * SAMPLE_RATE)
    if end - start <= win:
        return [(start, end)]
    starts = list(range(start, end - win + 1, hop))
    if starts[-1] + win < end:
        starts.append(end - win)
    return [(s, s + win) for s in starts]


def _embed_regions(encoder: Encoder, audio: np.ndarray, regions: list[tuple[int, int]],
                   hop_s: float = HOP_S) -> _Windows:
    spans: list[tuple[int, int]] = []
    owner: list[int] = []
    for idx, (start, end) in enumerate(regions):
        for span in region_windows(start * FRAME, end * FRAME, hop_s):
            if (span[1] - span[0]) / SAMPLE_RATE >= MIN_WINDOW_S:
                spans.append(span)
                owner.append(idx)
    return _Windows(spans, np.array(owner, dtype=int), encoder.embed_windows(audio, spans))


# ---------------------------------------------------------------- clustering


def smooth_embeddings(emb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Each window averaged with its neighbours in the same speech region: what is
    said varies from window to window, the voice does not, so this evens out content
    (a speaker change inside a region is blurred by one hop)."""
    out = emb.copy()
    same_prev = np.r_[False, region[1:] == region[:-1]]
    same_next = np.r_[region[:-1] == region[1:], False]
    out[1:] += SMOOTH_WEIGHT * emb[:-1] * same_prev[1:, None]
    out[:-1] += SMOOTH_WEIGHT * emb[1:] * same_next[:-1, None]
    return _normalise(out)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def refined_affinity(emb: np.ndarray) -> np.ndarray:
    """Cosine affinity refined as in Wang et al. 2018: diagonal -> row max, row-wise
    pruning of weak links, symmetrisation, diffusion, row-max normalisation."""
    aff = np.clip(emb @ emb.T, 0.0, 1.0)
    np.fill_diagonal(aff, 0.0)
    np.fill_diagonal(aff, aff.max(axis=1))
    keep = max(2, int(np.ceil(PRUNE_KEEP * len(aff))))
    thresholds = np.sort(aff, axis=1)[:, -keep][:, None]
    aff = np.where(aff >= thresholds, aff, aff * PRUNE_FACTOR)
    aff = np.maximum(aff, aff.T)
    aff = aff @ aff.T
    return aff / aff.max(axis=1, keepdims=True)


def spectral_vectors(emb: np.ndarray) -> np.ndarray:
    """Eigenvectors of the refined affinity, largest eigenvalue first."""
    aff = refined_affinity(emb)
    _, vecs = np.linalg.eigh((aff + aff.T) / 2)
    return vecs[:, ::-1]


def kmeans(points: np.ndarray, k: int, seed: int = 0, restarts: int = 8) -> np.ndarray:
    """Deterministic k-means (k-means++ seeding, several restarts, best inertia)."""
    rng = np.random.default_rng(seed)
    best, best_cost = np.zeros(len(points), int), np.inf
    for _ in range(restarts):
        centres = [points[rng.integers(len(points))]]
        for _ in range(1, k):
            d = np.min([((points - c) ** 2).sum(1) for c in centres], axis=0)
            centres.append(points[rng.choice(len(points), p=d / d.sum())] if d.sum() > 0
                           else points[rng.integers(len(points))])
        labels, cost = _lloyd(points, np.array(centres))
        if cost < best_cost:
            best, best_cost = labels, cost
    return best


def _lloyd(points: np.ndarray, centres: np.ndarray, iters: int = 50) -> tuple[np.ndarray, float]:
    labels = np.full(len(points), -1)
    for _ in range(iters):
        dist = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
        new = dist.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        centres = np.array([points[labels == j].mean(0) if np.any(labels == j) else centres[j]
                            for j in range(len(centres))])
    return labels, float(dist[np.arange(len(points)), labels].sum())


def _centroids(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return _normalise(np.array([emb[labels == j].mean(0) for j in np.unique(labels)]))


def reassign(emb: np.ndarray, labels: np.ndarray, iters: int = 5) -> np.ndarray:
    """A few k-means steps in embedding space (cosine), labels renumbered 0..k-1."""
    labels = np.unique(labels, return_inverse=True)[1]
    for _ in range(iters):
        new = np.unique((emb @ _centroids(emb, labels).T).argmax(1), return_inverse=True)[1]
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def distinct_threshold(n_small: int, profile: Profile) -> float:
    """Cosine distance between two cluster centroids above which they are taken as
    different speakers. The centroid of a small cluster is noisy, so the threshold
    grows as the smaller cluster shrinks."""
    return profile.distinct_distance * (1.0 + profile.distinct_small / max(n_small, 1))


def _pair_excess(emb: np.ndarray, a: np.ndarray, b: np.ndarray, profile: Profile) -> float:
    """How far two groups of windows are beyond the distinct-speaker threshold (< 0: same)."""
    ca, cb = _normalise(emb[a].mean(0)), _normalise(emb[b].mean(0))
    return 1.0 - float(ca @ cb) - distinct_threshold(min(int(a.sum()), int(b.sum())), profile)


def min_excess(emb: np.ndarray, labels: np.ndarray, profile: Profile) -> float:
    """The least distinct pair of clusters of a partition (> 0: all are distinct)."""
    k = labels.max() + 1
    return min(_pair_excess(emb, labels == a, labels == b, profile)
               for a in range(k) for b in range(a + 1, k))


def candidate_partitions(emb: np.ndarray, vecs: np.ndarray | None, k: int) -> list[np.ndarray]:
    """k-way partitions to choose from: spectral (k-means on the first k eigenvectors,
    rows normalised) and plain k-means on the embeddings, each refined in embedding
    space. Spectral alone sometimes mixes two close voices by what they say."""
    starts = [kmeans(emb, k)]
    if vecs is not None:
        starts.append(kmeans(_normalise(vecs[:, :k]), k))
    found = [reassign(emb, labels) for labels in starts]
    return [labels for labels in found if labels.max() + 1 == k]


def distinct_by_bic(stats: ClusterStats | None, labels: np.ndarray) -> bool:
    """Every pair of clusters is two voices by the MFCC ΔBIC (False without stats)."""
    if stats is None:
        return False
    k = labels.max() + 1
    return min(stats.delta_bic(labels == a, labels == b)
               for a in range(k) for b in range(a + 1, k)) >= DISTINCT_BIC


def cluster_windows(emb: np.ndarray, max_k: int, stats: ClusterStats | None = None,
                    profile: Profile | None = None) -> np.ndarray:
    """Speaker label per (smoothed) window embedding. k = 2, 3, ... is tried in turn
    and kept while the best k-way partition has every pair of clusters distinct (by
    centroid distance, or else by the ΔBIC of `stats`, the windows' MFCC statistics);
    the first k that fails stops the search, so one voice gives one speaker. (The 2018
    eigen-gap count was tried first: it picks the big female/male split and hides two
    close voices, and plain spectral clustering can never return one speaker.)"""
    profile = profile or profile_named()
    best = np.zeros(len(emb), int)
    if max_k <= 1 or len(emb) < 4:
        return best
    vecs = spectral_vectors(emb) if len(emb) <= MAX_SPECTRAL_WINDOWS else None
    for k in range(2, min(max_k, MAX_SPEAKERS, len(emb) // 2) + 1):
        scored = [(min_excess(emb, labels, profile), labels)
                  for labels in candidate_partitions(emb, vecs, k)]
        kept = [(excess, labels) for excess, labels in scored
                if excess > 0 or distinct_by_bic(stats, labels)]
        if not kept:
            break
        best = max(kept, key=lambda item: item[0])[1]
    return best


# ---------------------------------------------------------------- turns


def frame_scores(win: _Windows, cents: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, k) cosine similarity to each speaker, averaged over the windows that
    cover each frame; NaN where no window does."""
    sims = win.emb @ cents.T
    total = np.zeros((n_frames, len(cents)))
    count = np.zeros(n_frames)
    for (s, e), sim in zip(win.spans, sims):
        a, b = s // FRAME, max(s // FRAME + 1, int(np.ceil(e / FRAME)))
        total[a:b] += sim
        count[a:b] += 1
    with np.errstate(invalid="ignore"):
        return total / count[:, None]


def _region_labels(scores: np.ndarray) -> np.ndarray:
    """Best speaker per frame of one region, then fragments shorter than MIN_TURN_S
    given to the better-scoring neighbour (fills frames no window covered, too)."""
    valid = ~np.isnan(scores).any(axis=1)
    if not valid.any():
        return np.full(len(scores), -1)
    idx = np.flatnonzero(valid)
    nearest = idx[np.abs(np.arange(len(scores))[:, None] - idx[None]).argmin(1)]
    scores = scores[nearest]
    labels = scores.argmax(1)
    min_len = max(1, int(round(MIN_TURN_S / FRAME_S)))
    for _ in range(len(labels)):
        runs = _runs(labels)
        short = [r for r in runs if r[1] - r[0] < min_len]
        if len(runs) == 1 or not short:
            break
        s, e, _v = min(short, key=lambda r: r[1] - r[0])
        neighbours = {labels[s - 1]} if s > 0 else set()
        neighbours |= {labels[e]} if e < len(labels) else set()
        labels[s:e] = max(neighbours, key=lambda j: scores[s:e, j].mean())
    return labels


def _confidence(scores: np.ndarray, label: int) -> float:
    """Mean similarity to the own centroid, discounted when the runner-up is close."""
    own = float(np.clip(scores[:, label].mean(), 0.0, 1.0))
    if scores.shape[1] < 2:
        return round(own, 3)
    others = np.delete(scores, label, axis=1).max(axis=1)
    margin = max(0.0, float((scores[:, label] - others).mean()))
    return round(own * (1.0 - np.exp(-margin / 0.05)), 3)


def build_turns(scores: np.ndarray, regions: list[tuple[int, int]]) -> list[Turn]:
    """Turns from per-frame scores, never spanning a VAD silence."""
    turns = []
    for start, end in regions:
        region_scores = scores[start:end]
        labels = _region_labels(region_scores)
        for s, e, label in _runs(labels):
            if label < 0:
                continue
            filled = np.nan_to_num(region_scores[s:e], nan=0.0)
            turns.append(Turn(round((start + s) * FRAME_S, 3), round((start + e) * FRAME_S, 3),
                              f"c{label}", _confidence(filled, label)))
    return turns


# ---------------------------------------------------------------- the diarizer


def _as_mono(audio: np.ndarray) -> np.ndarray:
    """1-D float32 with NaN/inf zeroed (they would poison every window they touch)."""
    return np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0,
                         posinf=0.0, neginf=0.0)


class CpuDiarizer:
    """VAD + window embeddings + spectral clustering; safe to call from worker threads
    (no state is changed after load())."""

    def __init__(self, profile: Profile | None = None) -> None:
        self.profile = profile or profile_named()
        self.encoder: Encoder | None = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.profile.diarizer_model

    @property
    def loaded(self) -> bool:
        return self.encoder is not None

    def load(self) -> None:
        with self._lock:
            if self.encoder is None:
                try:
                    self.encoder = self.profile.load()
                except EngineError:
                    raise
                except Exception as exc:
                    raise EngineError("load", f"speaker encoder: {exc}") from exc

    def _ready(self) -> Encoder:
        if self.encoder is None:
            self.load()
        assert self.encoder is not None
        return self.encoder

    def diarize(self, audio: np.ndarray, max_speakers: int | None = None) -> Diarization:
        """Speaker turns labelled Speaker_0.. by first appearance; no speech -> no turns."""
        return as_stage("diarize", lambda: self._diarize(_as_mono(audio), max_speakers))

    def _diarize(self, audio: np.ndarray, max_speakers: int | None) -> Diarization:
        encoder = self._ready()
        flags = speech_frames(audio)
        regions = speech_regions(flags, self.profile.fill_gap_s)
        if not regions:
            return Diarization(turns=[])
        win = _embed_regions(encoder, audio, regions, self.profile.hop_s)
        if len(win.spans) == 0:
            return Diarization(turns=[])
        labels = self._cluster(win, max_speakers, audio, flags)
        cents = _centroids(win.emb, labels)
        scores = frame_scores(win, cents, len(flags))
        return Diarization(turns=relabel_by_first_appearance(build_turns(scores, regions)))

    def _cluster(self, win: _Windows, max_speakers: int | None, audio: np.ndarray,
                 flags: np.ndarray) -> np.ndarray:
        """Cluster the long windows (smoothed); short ones join their nearest centroid."""
        max_k = MAX_SPEAKERS if max_speakers is None else max(1, int(max_speakers))
        lengths = np.array([(e - s) / SAMPLE_RATE for s, e in win.spans])
        long_ = lengths >= MIN_CLUSTER_WINDOW_S
        if long_.sum() < 2:
            long_ = np.ones(len(lengths), bool)
        smooth = smooth_embeddings(win.emb, win.region)
        spans = [span for span, keep in zip(win.spans, long_) if keep]
        # an MFCC pass over the whole input: only worth it if clusters may be split
        stats = window_stats(audio, flags, FRAME, spans) if max_k > 1 else None
        labels_long = cluster_windows(smooth[long_], max_k, stats, self.profile)
        cents = _centroids(smooth[long_], labels_long)
        labels = (smooth @ cents.T).argmax(1)
        labels[long_] = labels_long
        return np.unique(labels, return_inverse=True)[1]

    def fingerprints(self, audio: np.ndarray, diarization: Diarization) -> dict[str, list[float]]:
        """One L2-normalised voice embedding per speaker (see the module's step 5)."""
        return as_stage("fingerprint", lambda: self._fingerprints(_as_mono(audio), diarization))

    def _fingerprints(self, audio: np.ndarray, diarization: Diarization) -> dict[str, list[float]]:
        encoder = self._ready()
        if self.profile.utterance_prints:
            return {speaker: encoder.embed(speech).tolist() for speaker, speech
                    in speaker_speech(audio, diarization, PRINT_SECONDS).items()}
        return _mean_window_prints(encoder, audio, diarization)


def speaker_speech(audio: np.ndarray, diarization: Diarization,
                   cap_s: float) -> dict[str, np.ndarray]:
    """Each speaker's turns joined in time order: their longest turns up to cap_s (long
    turns carry the steadiest voice; the cap bounds the time an hour's print takes)."""
    by_speaker: dict[str, list[tuple[int, int]]] = {}
    for speaker, start, end in _turn_spans(audio, diarization):
        by_speaker.setdefault(speaker, []).append((start, end))
    out = {}
    for speaker, spans in by_speaker.items():
        chosen, total = [], 0
        for start, end in sorted(spans, key=lambda s: s[0] - s[1]):  # longest first
            if total >= cap_s * SAMPLE_RATE:
                break
            chosen.append((start, end))
            total += end - start
        out[speaker] = np.concatenate([audio[s:e] for s, e in sorted(chosen)])
    return out


def _turn_spans(audio: np.ndarray, diarization: Diarization) -> list[tuple[str, int, int]]:
    """(speaker, start, end) sample ranges of the turns, clipped to the audio; turns
    shorter than a VAD frame are left out."""
    spans = []
    for turn in diarization.turns:
        start = max(0, int(turn.start * SAMPLE_RATE))
        end = min(len(audio), int(turn.end * SAMPLE_RATE))
        if end - start >= FRAME:
            spans.append((turn.speaker, start, end))
    return spans


def _mean_window_prints(encoder: Encoder, audio: np.ndarray,
                        diarization: Diarization) -> dict[str, list[float]]:
    """GE2E: the mean of the window embeddings over each speaker's turns."""
    spans, owners = [], []
    for speaker, start, end in _turn_spans(audio, diarization):
        for span in region_windows(start, end):
            spans.append(span)
            owners.append(speaker)
    emb = encoder.embed_windows(audio, spans)
    result = {}
    for speaker in diarization.speakers:
        rows = emb[[o == speaker for o in owners]]
        if len(rows):
            result[speaker] = _normalise(rows.mean(axis=0)).tolist()
    return result

"""Recordings of real people (tests/data/real, see its ATTRIBUTION.md) for the speaker
tests and benches: single-speaker clips grouped into recordings, multi-speaker clips
with their reference RTTM, and conversations assembled from clips of 3-4 people.

A "recording" of a person is a few of their clips joined, long enough for a print
(the pipeline names nobody with under 5 s of speech). Two recordings of a person
never share a clip. Clips of one session (one room, one microphone) make scores look
easier than real use: `bench/real_speaker_calibration.py --extra DIR` adds people
with recordings from different sources, read from a folder that is never committed.
"""

from __future__ import annotations

import json
import random
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from testaudio.evaluate import Turn, read_rttm

ROOT = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"
RATE = 16000


@dataclass(frozen=True)
class Clip:
    path: Path
    speaker: str
    session: str
    seconds: float


@dataclass(frozen=True)
class Recording:
    """Clips of one person joined with short pauses (a person's recording)."""

    speaker: str
    clips: tuple[Clip, ...]

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.clips)

    def audio(self, pause_s: float = 0.4) -> np.ndarray:
        pause = np.zeros(int(pause_s * RATE), np.float32)
        parts = [part for c in self.clips for part in (read(c.path), pause)]
        return np.concatenate(parts[:-1])


@dataclass(frozen=True)
class Multi:
    """A recording of several people with its reference turns."""

    name: str
    wav: Path
    turns: list[Turn]

    @property
    def speakers(self) -> list[str]:
        return sorted({t[2] for t in self.turns})


@cache
def manifest() -> tuple[dict, ...]:
    return tuple(json.loads((ROOT / "manifest.json").read_text()))


def read(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as float32 in [-1, 1]."""
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), path
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def write(path: Path, audio: np.ndarray) -> Path:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def _loud(samples: np.ndarray, floor_db: float) -> np.ndarray:
    """Per 20 ms frame (320 samples): within floor_db of the clip's loudest frame."""
    frames = len(samples) // 320
    rms = np.sqrt(np.mean(samples[:frames * 320].reshape(frames, 320) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms / rms.max()) > floor_db


def trimmed(samples: np.ndarray, floor_db: float = -35.0) -> np.ndarray:
    """The clip without the silence at its ends (20 ms frames more than floor_db under
    its loudest frame): a reference turn then covers speech, not a recording's lead-in."""
    loud = np.flatnonzero(_loud(samples, floor_db))
    return samples[loud[0] * 320:(loud[-1] + 1) * 320] if len(loud) else samples


def speech_spans(samples: np.ndarray, floor_db: float = -35.0,
                 fill_s: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of speech in a clip: 20 ms frames within floor_db of its
    loudest, pauses shorter than fill_s filled (a reference turn is speech, and the
    0.3 s gaps between spoken digits do not cut it into pieces the collar hides)."""
    spans: list[list[float]] = []
    for i in np.flatnonzero(_loud(samples, floor_db)):
        start, end = i * 0.02, (i + 1) * 0.02
        if spans and start - spans[-1][1] < fill_s:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [(a, b) for a, b in spans]


def clips() -> dict[str, list[Clip]]:
    """Each single-speaker person's clips, in manifest order."""
    out: dict[str, list[Clip]] = {}
    for entry in manifest():
        if entry["kind"] == "single":
            out.setdefault(entry["speaker"], []).append(
                Clip(ROOT / entry["path"], entry["speaker"], entry["session"],
                     entry["duration_s"]))
    return out


def recordings(min_seconds: float = 8.0) -> dict[str, list[Recording]]:
    """Each person's clips grouped, in order, into recordings of at least min_seconds
    (a short remainder joins the last one); people with too little speech are left out."""
    out: dict[str, list[Recording]] = {}
    for speaker, own in clips().items():
        groups: list[list[Clip]] = [[]]
        for clip in own:
            if sum(c.seconds for c in groups[-1]) >= min_seconds:
                groups.append([])
            groups[-1].append(clip)
        if len(groups) > 1 and sum(c.seconds for c in groups[-1]) < min_seconds:
            tail = groups.pop()
            groups[-1] += tail
        found = [Recording(speaker, tuple(g)) for g in groups]
        if found[0].seconds >= min_seconds:
            out[speaker] = found
    return out


def multis() -> list[Multi]:
    """The multi-speaker recordings with their reference turns."""
    return [Multi(Path(e["path"]).stem, ROOT / e["path"], read_rttm(ROOT / e["rttm"]))
            for e in manifest() if e["kind"] == "multi"]


def conversation(people: Sequence[Recording], path: Path, seed: int,
                 pause_s: tuple[float, float] = (0.3, 1.0)) -> list[Turn]:
    """A conversation taking turns clip by clip among `people` (every clip of each
    recording, in a seeded order, nobody twice in a row while others have clips left),
    written to `path`; its reference turns."""
    rng = random.Random(seed)
    queues = {r.speaker: list(r.clips) for r in people}
    audio: list[np.ndarray] = []
    turns: list[Turn] = []
    t, last = rng.uniform(*pause_s), None
    audio.append(np.zeros(int(t * RATE), np.float32))
    while any(queues.values()):
        ready = [s for s, q in queues.items() if q and s != last] or \
            [s for s, q in queues.items() if q]
        last = rng.choice(ready)
        samples = trimmed(read(queues[last].pop(0).path))
        turns += [(round(t + a, 3), round(t + b, 3), last) for a, b in speech_spans(samples)]
        gap = np.zeros(int(rng.uniform(*pause_s) * RATE), np.float32)
        audio += [samples, gap]
        t += (len(samples) + len(gap)) / RATE
    write(path, np.concatenate(audio))
    return turns


def main_print(diarizer, audio: np.ndarray) -> np.ndarray | None:
    """The print of the speaker who talks most in `audio`, as the speech server makes
    prints (a CpuDiarizer's diarize, then fingerprints); None without speech."""
    found = diarizer.diarize(audio)
    prints = diarizer.fingerprints(audio, found)
    talk: dict[str, float] = {}
    for turn in found.turns:
        talk[turn.speaker] = talk.get(turn.speaker, 0.0) + turn.end - turn.start
    return np.array(prints[max(talk, key=talk.__getitem__)]) if talk else None


def source(speaker: str) -> str:
    """Where a person's recordings come from (`vctk`, `fsdd`, ...; an --extra person
    is a source of their own)."""
    return speaker if speaker.startswith("x-") else speaker.split("-")[0]


def assembled(pool: dict[str, list[Recording]], count: int, folder: Path, seed: int = 7):
    """`count` conversations of 3 and 4 people (alternately) from different sources,
    one recording each: (name, wav, reference turns)."""
    rng = random.Random(seed)
    for index in range(count):
        size = 3 + index % 2
        chosen: list[str] = []
        for speaker in rng.sample(sorted(pool), len(pool)):
            if source(speaker) not in {source(c) for c in chosen}:
                chosen.append(speaker)
            if len(chosen) == size:
                break
        people = [rng.choice(pool[s]) for s in chosen]
        wav = folder / f"conversation-{index}.wav"
        turns = conversation(people, wav, seed=index)
        yield f"assembled-{index} ({'+'.join(chosen)})", wav, turns

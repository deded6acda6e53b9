"""Reproducible synthetic meetings: espeak-ng voices taking turns, with ground truth.

Real recordings with exact speaker turns and transcripts are scarce and cannot ship
with the repo; espeak-ng can make as much as we want, offline, and we know exactly
who said what when. Everything is seeded, and sox runs with -R -D (no dither), so
the same arguments give a byte-identical wav on the same espeak-ng/sox versions.

    python -m testaudio.generate OUT_DIR --speakers 3 --seconds 150 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import wave
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
PAUSE_RANGE = (0.3, 1.2)  # seconds of silence between lines
EDGE_RANGE = (0.3, 0.8)  # silence before the first and after the last line
NOISE_DBFS = -50.0  # RMS of the white noise floor, so the audio is never digitally silent
TRIM_THRESHOLD = 33  # |sample| above ~-60 dBFS counts as speech when trimming a line
MIN_LINES_PER_SPEAKER = 2  # a speaker heard once is too little to diarize
MAX_SPEAKERS = 5


@dataclass(frozen=True)
class Voice:
    """One espeak-ng speaker: a voice+variant, pitch (0-99) and speed (words/min)."""

    name: str
    pitch: int
    speed: int

    def args(self) -> list[str]:
        return ["-v", self.name, "-p", str(self.pitch), "-s", str(self.speed)]


# The first three separated well in diarization tests (see the CPU speech engine notes).
# Median F0 measured here on one sentence: 92, 246, 100, 320 and 168 Hz; spk0 and spk2
# are close in pitch but differ in formants and speed.
VOICES: tuple[Voice, ...] = (
    Voice("en-us+m3", 35, 150),
    Voice("en+f3", 70, 175),
    Voice("en-gb+m1", 50, 135),
    Voice("en-us+f2", 99, 145),
    Voice("en-gb+f4", 99, 160),
)
# Three voices that a model of real voices (the CPU engine's CAM++) also tells apart:
# to it en-us+m3 and en-gb+m1 are one person (cosine 0.86), these pairs 0.3-0.5.
DISTINCT_VOICES: tuple[Voice, ...] = (VOICES[0], VOICES[1], VOICES[4])


@dataclass
class Line:
    """One spoken line: who, what, and where it sits in conversation.wav (seconds)."""

    speaker: str
    text: str
    start: float
    end: float


@dataclass
class Conversation:
    """The generated files plus the reference they encode."""

    wav: Path
    rttm: Path
    lines: list[Line]
    duration: float
    speakers: list[str]


# ---------------------------------------------------------------- sentences

_OPENERS = ("Okay,", "Well,", "So,", "Right,", "Actually,", "Honestly,", "I think",
            "To be fair,", "Good point,", "As I said earlier,", "For what it is worth,")
_SUBJECTS = ("we", "I", "the team", "our client", "the design group", "marketing",
             "the new intern", "my manager", "the support team", "everyone here")
_MODALS = ("should", "could", "will", "need to", "might", "want to", "have to")
_VERBS = ("review", "update", "finish", "discuss", "share", "check", "move", "test",
          "plan", "approve", "send", "prepare", "present", "change", "simplify")
_ADJECTIVES = ("new", "final", "current", "weekly", "main", "second", "draft",
               "shared", "updated", "quarterly", "old")
_NOUNS = ("budget", "report", "schedule", "proposal", "contract", "website",
          "timeline", "survey", "release", "roadmap", "invoice", "design", "slide deck",
          "customer list", "training plan", "meeting agenda")
_TAILS = ("before Friday", "by the end of the week", "after lunch", "next Monday",
          "with the sales team", "before the next meeting", "so that everyone is ready",
          "because the deadline is close", "if we have time", "this afternoon",
          "tomorrow morning", "", "", "")
_STATES = ("almost ready", "still not finished", "looking good", "behind schedule",
           "a bit too long", "ready for review", "much better", "hard to read")
_PEOPLE = ("the sales team", "our partners", "the finance office", "the customer",
           "the engineers", "the board", "the new manager")
_TEMPLATES = (
    "{opener} {subject} {modal} {verb} the {adj} {noun} {tail}.",
    "{subject} {modal} {verb} the {noun} {tail}.",
    "Can we {verb} the {adj} {noun} {tail}?",
    "Do you think {subject} {modal} {verb} the {noun} {tail}?",
    "{opener} the {adj} {noun} is {state} for now.",
    "The {noun} is {state}, so {subject} {modal} {verb} it {tail}.",
    "I agree with you, and {subject} {modal} {verb} the {noun} {tail}.",
    "Thanks for the update on the {noun}, it really helps.",
    "Let me share my screen and show you the {adj} {noun}.",
    "We talked to {people} about the {adj} {noun} {tail}.",
    "Who is going to {verb} the {adj} {noun} {tail}?",
    "{opener} {people} asked us to {verb} the {noun} {tail}.",
    "Sorry, could you repeat what you said about the {noun}?",
)


def _fill(template: str, rng: random.Random) -> str:
    """One template with every slot drawn from its word list; spaces tidied."""
    slots = {"opener": _OPENERS, "subject": _SUBJECTS, "modal": _MODALS, "verb": _VERBS,
             "adj": _ADJECTIVES, "noun": _NOUNS, "tail": _TAILS, "state": _STATES,
             "people": _PEOPLE}
    text = template.format(**{k: rng.choice(v) for k, v in slots.items()})
    text = " ".join(text.split()).replace(" .", ".").replace(" ?", "?").replace(" ,", ",")
    return text[0].upper() + text[1:]


def make_sentence(rng: random.Random) -> str:
    """A plausible meeting sentence of 6-18 words that espeak-ng pronounces cleanly."""
    while True:
        text = _fill(rng.choice(_TEMPLATES), rng)
        if 6 <= len(text.split()) <= 18:
            return text


# ---------------------------------------------------------------- turn order

def _script(rng: random.Random, speakers: int) -> Iterator[tuple[int, str]]:
    """Endless (speaker index, sentence) pairs in a seeded turn order.

    Everyone speaks once first (shuffled); after that nobody speaks twice in a row
    and quieter speakers are favoured, so short conversations stay balanced.
    """
    counts = [0] * speakers
    order = list(range(speakers))
    rng.shuffle(order)
    yield from _count(order, counts, rng)
    previous = order[-1]
    while True:
        weights = [0.0 if i == previous and speakers > 1 else 1.0 / (1 + c) ** 2
                   for i, c in enumerate(counts)]
        previous = rng.choices(range(speakers), weights=weights)[0]
        yield from _count([previous], counts, rng)


def _count(order: list[int], counts: list[int], rng: random.Random) -> Iterator[tuple[int, str]]:
    for speaker in order:
        counts[speaker] += 1
        yield speaker, make_sentence(rng)


# ---------------------------------------------------------------- audio

def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak one line: 16 kHz mono int16 samples, leading/trailing silence trimmed."""
    spoken = subprocess.run(["espeak-ng", *voice.args(), "--stdout", "--stdin"],
                            input=text.encode(), capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-R", "-D", "-t", "wav", "-", "-r", str(SAMPLE_RATE),
                          "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-"],
                         input=spoken, capture_output=True, check=True).stdout
    return _trim(np.frombuffer(raw, dtype="<i2").astype(np.int16))


def _trim(samples: np.ndarray) -> np.ndarray:
    """Cut the silence espeak-ng puts around a line, so turn times are speech times."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > TRIM_THRESHOLD)
    if loud.size == 0:
        raise RuntimeError("espeak-ng produced silence")
    return samples[loud[0]:loud[-1] + 1]


def _synthesize_batch(batch: Sequence[tuple[int, str]],
                      voices: Sequence[Voice]) -> list[np.ndarray]:
    """Lines in parallel: each is two short subprocesses, so threads suffice."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda item: synthesize(item[1], voices[item[0]]), batch))


@dataclass
class _Clip:
    speaker: int
    text: str
    audio: np.ndarray


def _collect(script: Iterator[tuple[int, str]], voices: Sequence[Voice],
             seconds: float) -> list[_Clip]:
    """Synthesize script lines in batches until they surely fill `seconds`.

    Taking lines in order from one seeded script keeps the result independent of the
    batch sizes; the few surplus lines are dropped when the clips are laid out.
    """
    clips: list[_Clip] = []
    speakers = len(voices)
    while not _enough(clips, speakers, seconds):
        missing = seconds - sum(len(c.audio) for c in clips) / SAMPLE_RATE
        batch = [next(script) for _ in range(max(speakers, math.ceil(missing / 3.0)))]
        clips += [_Clip(s, t, a) for (s, t), a in zip(batch, _synthesize_batch(batch, voices))]
    return clips


def _enough(clips: Sequence[_Clip], speakers: int, seconds: float) -> bool:
    """True when even the shortest pauses would reach `seconds` with everyone heard."""
    total = sum(len(c.audio) / SAMPLE_RATE + PAUSE_RANGE[0] for c in clips)
    counts = [sum(c.speaker == s for c in clips) for s in range(speakers)]
    return total >= seconds and min(counts) >= MIN_LINES_PER_SPEAKER


def _layout(clips: Sequence[_Clip], speakers: int, seconds: float,
            rng: random.Random) -> tuple[np.ndarray, list[Line]]:
    """Join clips with seeded pauses until `seconds` is reached (at a line boundary)."""
    parts = [_silence(rng.uniform(*EDGE_RANGE))]
    lines: list[Line] = []
    position = len(parts[0])
    counts = [0] * speakers
    for index, clip in enumerate(clips):
        if index:
            parts.append(_silence(rng.uniform(*PAUSE_RANGE)))
            position += len(parts[-1])
        parts.append(clip.audio)
        lines.append(Line(f"spk{clip.speaker}", clip.text, position / SAMPLE_RATE,
                          (position + len(clip.audio)) / SAMPLE_RATE))
        position += len(clip.audio)
        counts[clip.speaker] += 1
        if position / SAMPLE_RATE >= seconds and min(counts) >= MIN_LINES_PER_SPEAKER:
            break
    parts.append(_silence(rng.uniform(*EDGE_RANGE)))
    return np.concatenate(parts), lines


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def _add_noise(audio: np.ndarray, rng: random.Random) -> np.ndarray:
    """Faint white noise: real inputs are never exactly zero, and VADs should cope."""
    noise_rng = np.random.default_rng(rng.getrandbits(64))
    sigma = 32768.0 * 10 ** (NOISE_DBFS / 20)
    mixed = audio.astype(np.float64) + noise_rng.normal(0.0, sigma, audio.shape)
    return np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------- files

def write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(audio.astype("<i2").tobytes())


def write_rttm(path: Path, lines: Sequence[Line], file_id: str = "conversation") -> None:
    """Standard RTTM, one SPEAKER record per line (our turns never overlap)."""
    rows = [f"SPEAKER {file_id} 1 {ln.start:.3f} {ln.end - ln.start:.3f} <NA> <NA> "
            f"{ln.speaker} <NA> <NA>\n" for ln in lines]
    path.write_text("".join(rows))


def load_conversation(out_dir: Path) -> Conversation:
    """Read back a conversation written by make_conversation (the reference side)."""
    out_dir = Path(out_dir)
    lines = [Line(**item) for item in json.loads((out_dir / "lines.json").read_text())]
    with wave.open(str(out_dir / "conversation.wav"), "rb") as wav:
        duration = wav.getnframes() / wav.getframerate()
    speakers = sorted({ln.speaker for ln in lines}, key=lambda s: int(s[3:]))
    return Conversation(out_dir / "conversation.wav", out_dir / "conversation.rttm",
                        lines, duration, speakers)


def make_conversation(out_dir: Path, *, speakers: int, seconds: float, seed: int,
                      voices: Sequence[Voice] | None = None) -> Conversation:
    """Generate conversation.wav, conversation.rttm and lines.json in `out_dir`.

    The audio runs to the first line boundary past `seconds` (plus a short silent
    tail), or longer if needed for every speaker to be heard twice. `voices` (one per
    speaker, spk0 first) replaces the first `speakers` of VOICES.
    """
    if not 1 <= speakers <= MAX_SPEAKERS:
        raise ValueError(f"speakers must be 1..{MAX_SPEAKERS}, got {speakers}")
    voices = tuple(voices) if voices is not None else VOICES[:speakers]
    if len(voices) != speakers:
        raise ValueError(f"{speakers} speakers need {speakers} voices, got {len(voices)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = _script(random.Random(f"{seed}:script"), speakers)
    clips = _collect(script, voices, seconds)
    timing = random.Random(f"{seed}:timing")
    audio, lines = _layout(clips, speakers, seconds, timing)
    write_wav(out_dir / "conversation.wav", _add_noise(audio, timing))
    write_rttm(out_dir / "conversation.rttm", lines)
    (out_dir / "lines.json").write_text(json.dumps([asdict(ln) for ln in lines], indent=1))
    return Conversation(out_dir / "conversation.wav", out_dir / "conversation.rttm", lines,
                        len(audio) / SAMPLE_RATE, [f"spk{i}" for i in range(speakers)])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    conv = make_conversation(args.out_dir, speakers=args.speakers, seconds=args.seconds,
                             seed=args.seed)
    per_speaker = {s: sum(ln.speaker == s for ln in conv.lines) for s in conv.speakers}
    print(f"{conv.wav}: {conv.duration:.1f} s, {len(conv.lines)} lines, "
          f"lines per speaker {per_speaker}")


if __name__ == "__main__":
    main()

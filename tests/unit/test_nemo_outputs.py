"""The NeMo engine's parsing, as pure functions, on the shapes NeMo 3.0 returns.

The real toolkit runs these same paths in tests/real_nemo (its own virtual environment);
these unit tests pin the arithmetic on hand-made inputs and need neither nemo nor torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

PATCHES = Path(__file__).resolve().parents[2] / "image" / "parakeet_patches"
sys.path.insert(0, str(PATCHES))

from engine_base import SAMPLE_RATE as SR, EngineError, Turn  # noqa: E402
from nemo_diarization import cap_speakers, raw_turns, speaker_audio  # noqa: E402
from nemo_loading import is_path  # noqa: E402
from nemo_transcript import Clock, transcript_from  # noqa: E402


def hyp(words: list[dict], segments: list[dict] | None = None, text: str = "") -> SimpleNamespace:
    """A Hypothesis as transcribe(timestamps=True) returns it."""
    return SimpleNamespace(text=text, timestamp={"word": words, "segment": segments or [],
                                                 "char": []})


def stamp(word: str, first: int, last: int, **seconds: float) -> dict:
    return {"word": word, "start_offset": first, "end_offset": last, **seconds}


def test_imports_without_nemo_and_load_says_so(monkeypatch):
    if importlib.util.find_spec("nemo") is not None:
        pytest.skip("a real nemo is installed here")
    sys.modules.pop("engine_nemo", None)
    engine = importlib.import_module("engine_nemo").NemoEngine()
    assert (engine.name, engine.asr_loaded, engine.diarizer_loaded) == ("nemo", False, False)
    with pytest.raises(EngineError) as error:
        engine.load()
    assert error.value.stage == "load" and "cannot import NeMo" in error.value.message
    with pytest.raises(EngineError) as error:
        engine.transcribe(np.zeros(SR, dtype=np.float32))
    assert error.value.stage == "transcribe"


def test_offsets_are_scaled_by_the_stride_and_cut_into_sentences():
    words = [stamp("Hello,", 0, 5), stamp("world.", 6, 12), stamp("How", 15, 18),
             stamp("are", 18, 20), stamp("you?", 20, 26)]
    result = transcript_from([hyp(words)], Clock(0.08, 3.0), None)
    assert [(w.word, w.start, w.end) for w in result.words] == [
        ("Hello,", 0.0, 0.4), ("world.", 0.48, 0.96), ("How", 1.2, 1.44),
        ("are", 1.44, 1.6), ("you?", 1.6, 2.08)]
    assert [(s.start, s.end, s.text) for s in result.segments] == [
        (0.0, 0.96, "Hello, world."), (1.2, 2.08, "How are you?")]
    assert (result.text, result.language) == ("Hello, world. How are you?", "en")


@pytest.mark.parametrize("shape", ["list", "tuple"])
def test_seconds_win_over_offsets_and_the_old_tuple_output_works(shape):
    one = hyp([stamp("Hi", 1, 2, start=0.1, end=0.25), stamp("there", 3, 9, start=0.3, end=0.7)],
              text="Hi there")
    output = [one] if shape == "list" else ([one], [[one]])
    result = transcript_from(output, Clock(0.08, 1.0), "de")
    assert [(w.word, w.start, w.end) for w in result.words] == [("Hi", 0.1, 0.25),
                                                                ("there", 0.3, 0.7)]
    assert [(s.start, s.end, s.text) for s in result.segments] == [(0.1, 0.7, "Hi there")]
    assert result.language == "de"


def test_times_are_clamped_to_the_clip():
    """TDT's last duration can run past the input: 5.00 s clips gave ends of 5.04-5.12 s."""
    words = [stamp("last", 60, 64, start=4.8, end=5.12), stamp("ghost", 63, 64, start=5.04,
                                                                  end=5.12)]
    segments = [{"segment": "last ghost", "start_offset": 60, "end_offset": 64,
                 "start": 4.8, "end": 5.12}]
    result = transcript_from([hyp(words, segments)], Clock(0.08, 5.0), None)
    assert [(w.start, w.end) for w in result.words] == [(4.8, 5.0), (5.0, 5.0)]
    assert [(s.start, s.end) for s in result.segments] == [(4.8, 5.0)]


def test_unknown_times_and_empty_output():
    words = [stamp("kept", 0, 3), stamp("unknown", -1, -1), {"word": "no times"}]
    result = transcript_from([hyp(words)], Clock(0.08, 1.0), None)
    assert [w.word for w in result.words] == ["kept"]
    assert transcript_from([], Clock(0.08, 1.0), None).text == ""
    assert transcript_from(["plain text "], Clock(0.08, 1.0), None).text == "plain text"


def probs_for(frames: int, runs: list[tuple[int, int, int, float]]) -> np.ndarray:
    probs = np.full((frames, 4), 0.05, dtype=np.float32)
    for speaker, first, last, value in runs:
        probs[first:last, speaker] = value
    return probs


def test_segment_lines_grouped_by_speaker_become_turns_in_time_order():
    # NeMo 3.0 writes "%.3f %.3f speaker_N", grouped by speaker, not in time order
    lines = ["0.000 2.400 speaker_2", "4.000 5.040 speaker_2", "2.400 4.000 speaker_0",
             "bad line", "3.000 3.000 speaker_1"]
    probs = probs_for(63, [(2, 0, 30, 0.9), (0, 30, 50, 0.7), (2, 50, 63, 0.8)])
    turns = raw_turns(lines, probs, 0.08, 5.0)
    assert [(t.start, t.end, t.speaker, round(t.confidence, 3)) for t in turns] == [
        (0.0, 2.4, "2", 0.9), (2.4, 4.0, "0", 0.7), (4.0, 5.0, "2", 0.8)]  # 5.04 clamped


def test_max_speakers_merges_the_weakest_into_the_most_active():
    probs = probs_for(57, [(0, 0, 25, 0.9), (1, 25, 50, 0.9), (2, 50, 57, 0.6),
                           (1, 50, 57, 0.4)])
    turns = [Turn(0.0, 2.0, "0", 0.9), Turn(2.0, 4.0, "1", 0.9), Turn(4.0, 4.56, "2", 0.6)]
    capped = cap_speakers(turns, 2, probs, 0.08)
    # speaker 2's turn goes to speaker 1 (0.4 > 0.05) and joins its touching turn;
    # confidence is duration-weighted: (2.0 x 0.9 + 0.56 x 0.4) / 2.56
    assert [(t.start, t.end, t.speaker, round(t.confidence, 3)) for t in capped] == [
        (0.0, 2.0, "0", 0.9), (2.0, 4.56, "1", round((1.8 + 0.56 * 0.4) / 2.56, 3))]
    assert cap_speakers(turns, None, probs, 0.08) == turns


def test_a_fingerprint_hears_at_most_30_s_of_the_longest_turns():
    audio = np.random.default_rng(7).uniform(-0.5, 0.5, 42 * SR).astype(np.float32)
    turns = [Turn(0, 12, "Speaker_0", 1), Turn(12.5, 40, "Speaker_0", 1)]
    clip = speaker_audio(audio, turns, 30.0)
    # longest first (27.5 s), topped up from the next (2.5 s), joined in time order
    expected = np.concatenate([audio[: int(2.5 * SR)], audio[int(12.5 * SR): 40 * SR]])
    assert clip.size == 30 * SR
    assert math.isclose(float(np.abs(clip).sum()), float(np.abs(expected).sum()), rel_tol=1e-6)


@pytest.mark.parametrize(("spec", "path"), [
    ("nvidia/parakeet-tdt-0.6b-v3", False), ("titanet_large", False),
    ("/models/parakeet.nemo", True), ("./parakeet", True), ("~/m/x.nemo", True),
    ("models/parakeet.nemo", True)])
def test_a_model_spec_is_a_hub_name_or_a_file(spec, path):
    assert is_path(spec) is path

"""The test-conversation generator (reproducible, truthful) and the scoring maths."""

from __future__ import annotations

import json
import random
import wave
from pathlib import Path

import numpy as np
import pytest

from testaudio import evaluate as ev
from testaudio.generate import (VOICES, Conversation, load_conversation, make_conversation,
                                make_sentence, synthesize)

SECONDS = 25.0


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> Conversation:
    return make_conversation(tmp_path_factory.mktemp("a"), speakers=3, seconds=SECONDS, seed=7)


def _samples(path: Path) -> tuple[np.ndarray, wave._wave_params]:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), wav.getparams()


# ---------------------------------------------------------------- generator

def test_same_seed_gives_identical_files(conv: Conversation, tmp_path: Path) -> None:
    again = make_conversation(tmp_path, speakers=3, seconds=SECONDS, seed=7)
    for name in ("conversation.wav", "conversation.rttm", "lines.json"):
        assert (tmp_path / name).read_bytes() == (conv.wav.parent / name).read_bytes(), name
    assert again.lines == conv.lines


def test_different_seed_gives_different_audio_and_text(conv: Conversation,
                                                        tmp_path: Path) -> None:
    other = make_conversation(tmp_path, speakers=3, seconds=SECONDS, seed=8)
    assert other.wav.read_bytes() != conv.wav.read_bytes()
    assert [ln.text for ln in other.lines] != [ln.text for ln in conv.lines]


def test_wav_is_16k_mono_int16_of_the_stated_duration(conv: Conversation) -> None:
    samples, params = _samples(conv.wav)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
    assert conv.duration == pytest.approx(len(samples) / 16000)
    assert SECONDS <= conv.duration < SECONDS + 10


def test_lines_are_ordered_disjoint_and_inside_the_audio(conv: Conversation) -> None:
    assert conv.lines[0].start > 0
    for before, after in zip(conv.lines, conv.lines[1:]):
        assert before.start < before.end <= after.start - 0.29  # pauses are >= 0.3 s
    assert conv.lines[-1].end <= conv.duration - 0.29
    assert conv.lines[-1].end >= SECONDS  # stops at the first line boundary past SECONDS


def test_line_times_point_at_speech_and_pauses_are_quiet(conv: Conversation) -> None:
    samples, _ = _samples(conv.wav)
    x = samples.astype(np.float64)
    speech = np.zeros(len(x), dtype=bool)
    for ln in conv.lines:
        speech[round(ln.start * 16000):round(ln.end * 16000)] = True
    rms_pause = np.sqrt(np.mean(x[~speech] ** 2))
    assert 60 < rms_pause < 150  # only the -50 dBFS noise (~104)
    for ln in conv.lines:
        seg = x[round(ln.start * 16000):round(ln.end * 16000)]
        assert np.sqrt(np.mean(seg ** 2)) > 20 * rms_pause
        assert np.abs(seg[:160]).max() > 10 * rms_pause  # speech starts right at `start`


def test_rttm_and_lines_json_agree_with_the_lines(conv: Conversation) -> None:
    turns = ev.read_rttm(conv.rttm)
    assert len(turns) == len(conv.lines)
    for (start, end, speaker), ln in zip(turns, conv.lines):
        assert speaker == ln.speaker
        assert start == pytest.approx(ln.start, abs=1e-3)
        assert end == pytest.approx(ln.end, abs=2e-3)
    assert conv.rttm.read_text().splitlines()[0].split()[:3] == ["SPEAKER", "conversation", "1"]
    assert load_conversation(conv.wav.parent) == conv


def test_every_speaker_speaks_at_least_twice(conv: Conversation, tmp_path: Path) -> None:
    assert conv.speakers == ["spk0", "spk1", "spk2"]
    assert {ln.speaker for ln in conv.lines} == set(conv.speakers)
    five = make_conversation(tmp_path, speakers=5, seconds=5, seed=3)  # too short for 5
    counts = [sum(ln.speaker == s for ln in five.lines) for s in five.speakers]
    assert five.speakers == [f"spk{i}" for i in range(5)] and min(counts) >= 2


def test_sentences_are_6_to_18_words_and_vary_with_the_seed() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        for _ in range(20):
            sentence = make_sentence(rng)
            assert 6 <= len(sentence.split()) <= 18, sentence
            assert sentence[0].isupper() and sentence[-1] in ".?"
    assert make_sentence(random.Random(1)) != make_sentence(random.Random(2))


def _median_f0(x: np.ndarray) -> float:
    """Autocorrelation pitch of loud voiced 40 ms frames (first peak near the maximum)."""
    f0s, n, lo, hi = [], 640, 16000 // 400, 16000 // 60
    for i in range(0, len(x) - n, 320):
        frame = x[i:i + n] - x[i:i + n].mean()
        if np.sqrt(np.mean(frame ** 2)) < 0.02:
            continue
        full = np.correlate(frame, frame, "full")[n - 1:]
        ac = full[lo:hi] / full[0]
        peaks = [j for j in range(1, len(ac) - 1)
                 if ac[j] >= 0.85 * ac.max() and ac[j - 1] <= ac[j] >= ac[j + 1]]
        if ac.max() > 0.5 and peaks:  # voiced
            f0s.append(16000 / (lo + peaks[0]))
    return float(np.median(f0s))


def test_added_voices_differ_in_pitch_from_all_others() -> None:
    text = "Okay, I think the team should review the final budget before Friday."
    f0 = [_median_f0(synthesize(text, v).astype(np.float64) / 32768) for v in VOICES]
    for new in (3, 4):
        for other in range(len(VOICES)):
            if other != new:
                assert abs(np.log(f0[new] / f0[other])) > np.log(1.15), (new, other, f0)


# ---------------------------------------------------------------- WER

@pytest.mark.parametrize(("ref", "hyp", "expected"), [
    ("the cat sat down", "the cat sat up", 0.25),
    ("Hello, World!  It's fine.", "hello world it's fine", 0.0),
    ("one two three four", "one two three four five", 0.25),
    ("one two three four", "two three", 0.5),
    ("a b", "c d e f", 2.0),
    ("", "", 0.0),
    ("", "extra", 1.0),
])
def test_wer(ref: str, hyp: str, expected: float) -> None:
    assert ev.wer(ref, hyp) == pytest.approx(expected)


def test_align_pairs_matches_substitutions_and_gaps() -> None:
    assert ev.align(list("abcd"), list("axd")) in (
        [(0, 0), (1, None), (2, 1), (3, 2)], [(0, 0), (1, 1), (2, None), (3, 2)])
    assert ev.align([], ["a"]) == [(None, 0)]
    assert ev.align(["a"], []) == [(0, None)]


def test_wer_matches_a_plain_levenshtein_on_random_strings() -> None:
    rng = random.Random(0)
    for _ in range(50):
        ref = [rng.choice("abcde") for _ in range(rng.randint(1, 12))]
        hyp = [rng.choice("abcde") for _ in range(rng.randint(0, 12))]
        assert ev.wer(" ".join(ref), " ".join(hyp)) * len(ref) == pytest.approx(
            _levenshtein(ref, hyp))


def _levenshtein(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


# ---------------------------------------------------------------- DER

REF = [(0.0, 10.0, "A"), (11.0, 21.0, "B")]


def test_der_perfect_and_relabelled_hypotheses_score_zero() -> None:
    assert ev.der(REF, REF) == 0.0
    assert ev.der(REF, [(0.0, 10.0, "Speaker_1"), (11.0, 21.0, "Speaker_0")]) == 0.0


def test_der_half_the_speech_missed_is_one_half() -> None:
    hyp = [(0.0, 5.0, "x"), (11.0, 16.0, "y")]
    # scored speech: 2 x 9.5 s (collars at 0, 10, 11, 21); missed 2 x 4.75 s
    assert ev.der(REF, hyp) == pytest.approx(0.5)
    parts = ev.der_breakdown(REF, hyp)
    assert (parts.missed, parts.false_alarm, parts.confusion) == pytest.approx((9.5, 0, 0))


def test_der_confusion_and_false_alarm() -> None:
    one_label = [(0.0, 21.0, "x")]  # B's speech given A's label, plus the gap
    parts = ev.der_breakdown(REF, one_label, collar=0.0)
    assert parts.confusion == pytest.approx(10.0) and parts.false_alarm == pytest.approx(1.0)
    assert parts.der == pytest.approx(11.0 / 20.0)


def test_der_collar_forgives_small_boundary_shifts_only() -> None:
    shifted = [(0.2, 10.2, "A"), (11.2, 21.2, "B")]
    assert ev.der(REF, shifted, collar=0.25) == 0.0
    assert ev.der(REF, shifted, collar=0.0) == pytest.approx(0.8 / 20.0)
    assert ev.der(REF, [(0.4, 10.4, "A"), (11.4, 21.4, "B")]) > 0


def test_der_mapping_is_one_to_one() -> None:
    # splitting A in two: only one half can map to A, the other is confusion
    hyp = [(0.0, 5.0, "x"), (5.0, 10.0, "y"), (11.0, 21.0, "z")]
    parts = ev.der_breakdown(REF, hyp, collar=0.0)
    assert parts.confusion == pytest.approx(5.0)
    assert parts.mapping["z"] == "B" and len(parts.mapping) == 2
    assert {parts.mapping.get("x"), parts.mapping.get("y")} == {"A", None}


# ---------------------------------------------------------------- words x speakers

LINES = [{"speaker": "spk0", "text": "Good morning, everyone."},
         {"speaker": "spk1", "text": "Hello there, how are you?"}]


def test_word_speaker_accuracy_counts_only_recognised_words() -> None:
    hyp = [("Good", 0, 1, "S1"), ("morning", 1, 2, "S1"), ("everybody", 2, 3, "S1"),
           ("hello", 4, 5, "S0"), ("there", 5, 6, "S0"), ("how", 6, 7, "S1"),
           ("are", 7, 8, "S0"), ("you", 8, 9, "S0")]
    # matched: good morning (S1->spk0) hello there how are you; "how" is misattributed
    assert ev.word_speaker_accuracy(LINES, hyp) == pytest.approx(6 / 7)
    assert ev.word_speaker_accuracy(LINES, hyp, {"S0": "spk0", "S1": "spk1"}) == \
        pytest.approx(1 / 7)
    assert ev.word_speaker_accuracy(LINES, [("nothing", 0, 1, "S0")]) == 0.0


def test_speaker_for_prefers_overlap_then_nearest_turn() -> None:
    turns = [(0.0, 2.0, "a"), (2.5, 4.0, "b")]
    assert ev.speaker_for(1.8, 2.6, turns) == "a"  # 0.2 s with a, 0.1 s with b
    assert ev.speaker_for(2.3, 2.4, turns) == "b"  # in the gap, nearer b
    assert ev.speaker_for(9.0, 9.5, turns) == "b"
    assert ev.speaker_for(1.0, 1.0, []) is None
    overlapping = [(4.0, 5.0, "b"), (0.0, 10.0, "a")]  # midpoint 4.2 is inside both
    assert ev.speaker_for(3.8, 4.6, overlapping) == "a"


# ---------------------------------------------------------------- evaluate

def _responses(conv: Conversation, labels: dict[str, str]) -> tuple[dict, dict]:
    """A perfect server: every word evenly spread over its line, turns = lines."""
    words = []
    for ln in conv.lines:
        tokens = ln.text.split()
        step = (ln.end - ln.start) / len(tokens)
        words += [{"word": w, "start": ln.start + k * step, "end": ln.start + (k + 1) * step}
                  for k, w in enumerate(tokens)]
    text = " ".join(ln.text for ln in conv.lines)
    segments = [{"start_s": ln.start, "end_s": ln.end, "speaker": labels[ln.speaker],
                 "confidence": 0.9} for ln in conv.lines]
    return ({"text": text, "words": words, "segments": [], "duration": conv.duration},
            {"segments": segments, "speakers_detected": len(set(labels.values()))})


def test_evaluate_perfect_server(conv: Conversation) -> None:
    labels = {"spk0": "Speaker_2", "spk1": "Speaker_0", "spk2": "Speaker_1"}
    result = ev.evaluate(conv.wav.parent, *_responses(conv, labels))
    assert result == {"wer": 0.0, "der": 0.0, "speakers_ref": 3, "speakers_detected": 3,
                      "word_speaker_accuracy": 1.0}


def test_evaluate_merged_speakers(conv: Conversation, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    labels = {"spk0": "Speaker_0", "spk1": "Speaker_1", "spk2": "Speaker_1"}
    transcription, diarization = _responses(conv, labels)
    transcription["text"] = transcription["text"].replace("the ", "a ", 1)
    result = ev.evaluate(conv.wav.parent, transcription, diarization)
    def talk(speaker: str) -> float:
        return sum(ln.end - ln.start for ln in conv.lines if ln.speaker == speaker)

    # Speaker_1 maps to whichever of spk1/spk2 talks longer; the other's words are wrong
    unmapped = min(("spk1", "spk2"), key=talk)
    lost = sum(len(ln.text.split()) for ln in conv.lines if ln.speaker == unmapped)
    total = sum(len(ln.text.split()) for ln in conv.lines)
    assert result["wer"] == pytest.approx(1 / total)
    assert result["speakers_detected"] == 2
    assert 0.1 < result["der"] < 0.9
    assert result["word_speaker_accuracy"] == pytest.approx(1 - lost / total)
    (tmp_path / "t.json").write_text(json.dumps(transcription))
    (tmp_path / "d.json").write_text(json.dumps(diarization))
    ev.main([str(conv.wav.parent), str(tmp_path / "t.json"), str(tmp_path / "d.json")])
    out = capsys.readouterr().out
    assert "speakers_detected      2" in out
    assert f"der                    {result['der']:.4f}" in out

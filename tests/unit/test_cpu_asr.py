"""The CPU recogniser (Whisper tiny.en + PocketSphinx alignment) on real speech.

Speech is synthesised with espeak-ng (seeded pauses, faint noise), so the text and
each sentence's time span are known: words must be recognised (WER) and placed
inside the sentence they belong to.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import signal

pytest.importorskip("faster_whisper")

import cpu_asr  # noqa: E402
from cpu_asr import CpuTranscriber, check_weights, lines_from_words  # noqa: E402
from word_align import place_words, tidy  # noqa: E402
from engine_base import SAMPLE_RATE, EngineError, Transcript, Word  # noqa: E402
from testaudio.evaluate import wer as word_error_rate  # noqa: E402

SENTENCES = [
    "The children played in the park until the sun went down.",
    "He bought three apples, a loaf of bread, and some fresh milk.",
    "Please remember to bring your notebook and a pen to the meeting.",
    "Our neighbours are moving to a bigger house next month.",
]
PAUSES = [0.7, 1.1, 0.5, 0.9]  # after each sentence; the first is preceded by 0.6 s
SLACK = 0.3  # how far outside its sentence's span a word may reach
EDGE = 0.15  # sentence start/end vs first/last word (alignment is ~10-40 ms off)


@dataclass
class Speech:
    audio: np.ndarray
    spans: list[tuple[float, float]]  # each sentence's voiced span, seconds


def _speak(text: str, tmp: Path) -> np.ndarray:
    """One sentence from espeak-ng at 16 kHz, its leading/trailing silence trimmed."""
    raw, out = tmp / "raw.wav", tmp / "16k.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+m3", "-p", "35", "-s", "150", "-w", str(raw), text],
                   check=True, capture_output=True)
    # -R -D: no dither, so the file is the same on every run
    subprocess.run(["sox", "-R", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                    str(out)], check=True, capture_output=True)
    with wave.open(str(out)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768.0
    voiced = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[voiced[0]: voiced[-1] + 1].astype(np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Speech:
    missing = [tool for tool in ("espeak-ng", "sox") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"test speech needs {', '.join(missing)}: run scripts/setup test")
    tmp = tmp_path_factory.mktemp("speech")
    parts, spans, t = [np.zeros(int(0.6 * SAMPLE_RATE), np.float32)], [], 0.6
    for text, pause in zip(SENTENCES, PAUSES):
        voiced = _speak(text, tmp)
        spans.append((t, t + len(voiced) / SAMPLE_RATE))
        gap = np.zeros(int(pause * SAMPLE_RATE), np.float32)
        parts += [voiced, gap]
        t += (len(voiced) + len(gap)) / SAMPLE_RATE
    audio = np.concatenate(parts)
    audio += np.random.default_rng(5).normal(0, 0.002, len(audio)).astype(np.float32)
    return Speech(audio, spans)


@pytest.fixture(scope="module")
def asr() -> CpuTranscriber:
    transcriber = CpuTranscriber()
    transcriber.load()
    return transcriber


@pytest.fixture(scope="module")
def result(asr: CpuTranscriber, speech: Speech) -> Transcript:
    return asr.transcribe(speech.audio)


def test_recognises_the_words(result: Transcript) -> None:
    wer = word_error_rate(" ".join(SENTENCES), result.text)
    assert wer <= 0.3, f"WER {wer:.2f}: {result.text!r}"
    assert any(w.word.endswith(".") for w in result.words), "punctuation stays on words"


def test_word_times_are_monotonic_and_inside_the_audio(result: Transcript,
                                                       speech: Speech) -> None:
    duration = len(speech.audio) / SAMPLE_RATE
    assert result.words
    for prev, word in zip(result.words, result.words[1:]):
        assert word.start >= prev.end, (prev, word)
    for word in result.words:
        assert 0.0 <= word.start < word.end <= duration, word


def test_every_word_lies_in_its_sentence(result: Transcript, speech: Speech) -> None:
    for word in result.words:
        assert any(s - SLACK <= word.start and word.end <= e + SLACK for s, e in speech.spans), \
            f"{word} is outside every spoken sentence {speech.spans}"
    for start, end in speech.spans:
        inside = [w for w in result.words if start - SLACK <= w.start and w.end <= end + SLACK]
        assert len(inside) >= 6, f"sentence {start:.2f}-{end:.2f} got {inside}"
        assert abs(inside[0].start - start) <= EDGE, (inside[0], start)
        assert abs(inside[-1].end - end) <= EDGE, (inside[-1], end)


def test_segments_are_lines_covering_their_words(result: Transcript) -> None:
    assert result.segments
    assert result.text == " ".join(s.text for s in result.segments)
    assert [w.word for w in result.words] == " ".join(s.text for s in result.segments).split()
    for seg in result.segments:
        assert seg.text and seg.start < seg.end
    for prev, seg in zip(result.segments, result.segments[1:]):
        assert seg.start >= prev.end


def test_lines_break_at_pauses() -> None:
    words = [("One", 0.0, 0.3), ("two.", 0.35, 0.6), ("Three", 0.95, 1.2), ("-", 1.2, 1.25),
             ("four", 1.3, 1.5)]
    lines = lines_from_words(words, gap=0.3)
    assert [(ln.text, ln.start, ln.end) for ln in lines] == [("One two.", 0.0, 0.6),
                                                           ("Three- four", 0.95, 1.5)]
    assert lines_from_words([]) == []


def test_a_line_without_letters_or_digits_is_not_speech() -> None:
    """What Whisper wrote for faint noise on a fresh install: "... .." (no words)."""
    words = [("...", 0.0, 0.4), ("..", 0.5, 0.9), ("-", 2.0, 2.1), ("3", 3.0, 3.2),
             ("...", 3.3, 3.5), ("Yes.", 5.0, 5.3)]
    assert [ln.text for ln in lines_from_words(words, gap=0.3)] == ["3...", "Yes."]


def test_a_word_whisper_gives_no_duration_is_kept(asr: CpuTranscriber, speech: Speech,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    start, end = speech.spans[0]
    word = SimpleNamespace(word=" Sorry,", start=start + 0.2, end=start + 0.2)
    segment = SimpleNamespace(words=[word], no_speech_prob=0.0)
    monkeypatch.setattr(asr._whisper, "transcribe", lambda *_a, **_k: ([segment], None))
    result = asr.transcribe(speech.audio)
    assert [w.word for w in result.words] == ["Sorry,"]
    assert start - SLACK <= result.words[0].start < result.words[0].end <= end + SLACK


def test_weights_that_differ_are_refused(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="sha256"):
        check_weights(tmp_path)


def test_missing_model_package_is_a_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_asr, "MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(EngineError) as info:
        CpuTranscriber().load()
    assert info.value.stage == "load" and "spark-control[local]" in info.value.message


@pytest.mark.parametrize("audio", [np.zeros(3 * SAMPLE_RATE, np.float32),
                                   np.random.default_rng(1).normal(0, 0.003, 3 * SAMPLE_RATE)
                                   .astype(np.float32),
                                   np.zeros(0, np.float32)],
                         ids=["zeros", "faint-noise", "empty"])
def test_silence_gives_no_words(asr: CpuTranscriber, audio: np.ndarray) -> None:
    assert asr.transcribe(audio) == Transcript(text="", words=[], segments=[])


@pytest.mark.parametrize("language", ["fr", "de", "zh", "spanish"])
def test_other_languages_are_refused(asr: CpuTranscriber, language: str) -> None:
    with pytest.raises(ValueError, match="English"):
        asr.transcribe(np.zeros(SAMPLE_RATE, np.float32), language)


@pytest.mark.parametrize("language", [None, "en", "English", "en-US"])
def test_english_is_accepted(asr: CpuTranscriber, language: str | None) -> None:
    assert asr.transcribe(np.zeros(SAMPLE_RATE, np.float32), language).words == []


def test_failures_inside_are_engine_errors(asr: CpuTranscriber, speech: Speech,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("native decoder crashed")

    monkeypatch.setattr(asr._whisper, "transcribe", broken)
    with pytest.raises(EngineError) as info:
        asr.transcribe(speech.audio[: 4 * SAMPLE_RATE])
    assert info.value.stage == "transcribe" and "crashed" in info.value.message


def test_not_loaded_is_an_engine_error() -> None:
    with pytest.raises(EngineError):
        CpuTranscriber().transcribe(np.zeros(SAMPLE_RATE, np.float32))


def test_concurrent_calls_give_the_same_words(asr: CpuTranscriber, speech: Speech) -> None:
    clip = speech.audio[: int(speech.spans[1][1] * SAMPLE_RATE) + SAMPLE_RATE // 2]
    alone = asr.transcribe(clip)
    results: list[Transcript] = []
    threads = [threading.Thread(target=lambda: results.append(asr.transcribe(clip)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Whisper's words are deterministic (no sampling fallback), but PocketSphinx keeps
    # state from the previous utterance (not its CMN, not its noise removal: both were
    # tried), so word times may move by a few ms with what came before.
    assert len(results) == 2
    for got in results:
        assert got.text == alone.text
        assert [w.word for w in got.words] == [w.word for w in alone.words]
        for word, ref in zip(got.words, alone.words):
            assert word.start == pytest.approx(ref.start, abs=0.05)
            assert word.end == pytest.approx(ref.end, abs=0.05)


def test_words_missing_from_the_dictionary_still_align(asr: CpuTranscriber) -> None:
    aligner = asr._aligner
    lexicon = aligner.lexicon
    for token in ("notesbook", "to-morrow", "10", "Zorblaxian,", "1.30", "p.m."):
        key = lexicon.key(token)
        assert key and aligner.lookup(key), token
    assert lexicon.key("—") is None  # nothing to pronounce


def test_partial_or_failed_alignment_spreads_the_rest() -> None:
    tokens = ["one", "two", "three", "four"]
    keys = ["one", "two", "three", "four"]
    partial = place_words(tokens, keys, [(1.0, 1.3), (1.3, 1.6)], 0.9, 2.5)
    assert partial[:2] == [(1.0, 1.3), (1.3, 1.6)]
    assert partial[2][0] == 1.6 and partial[-1][1] == pytest.approx(2.5)
    failed = place_words(tokens, keys, [], 0.9, 2.5)
    assert failed[0][0] == 0.9 and failed[-1][1] == pytest.approx(2.5)
    assert all(a[1] == b[0] for a, b in zip(failed, failed[1:]))
    # a token without a pronunciation shares its aligned neighbour's time
    shared = place_words(["a", "-", "b"], ["a", None, "b"], [(0.0, 0.4), (0.5, 0.9)], 0.0, 1.0)
    assert shared[0][0] == 0.0 and shared[1][1] == pytest.approx(0.4) and shared[2] == (0.5, 0.9)


def test_tidy_keeps_words_ordered_and_inside_the_audio() -> None:
    # overlapping, empty, and running past the end (a line cut off by the input's end)
    words = [Word("a", 1.0, 2.0), Word("b", 1.5, 1.5), Word("c", 2.9, 3.4), Word("d", 3.3, 3.5)]
    got = tidy(words, duration=3.0)
    assert [w.word for w in got] == ["a", "b", "c", "d"]
    for prev, word in zip(got, got[1:]):
        assert word.start >= prev.end
    assert all(0.0 <= w.start < w.end <= 3.0 for w in got)


def test_shaping_cuts_the_low_band_and_lifts_the_top():
    import frontend

    freqs = np.array([60.0, 125.0, 1000.0, 6000.0])
    _, response = signal.sosfreqz(frontend.SHAPING, worN=freqs, fs=SAMPLE_RATE)
    gain_db = 20 * np.log10(np.abs(response))
    assert gain_db[0] < -45 and gain_db[1] < -20  # hum and a low voice's F0
    assert abs(gain_db[2]) < 1.5  # the speech band is left alone
    assert 5.0 < gain_db[3] < 6.5  # the shelf


def test_shaping_keeps_length_and_dtype():
    import frontend

    tone = np.sin(np.arange(SAMPLE_RATE) * 0.3).astype(np.float32)
    shaped = frontend.shape(tone)
    assert shaped.dtype == np.float32 and len(shaped) == len(tone)
    assert len(frontend.shape(np.zeros(0, np.float32))) == 0


def test_noise_reduction_lowers_a_steady_floor_and_keeps_the_speech():
    import frontend

    rng = np.random.default_rng(3)
    n = SAMPLE_RATE * 20
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / SAMPLE_RATE)
    speech = np.where(np.arange(n) % (4 * SAMPLE_RATE) < 2 * SAMPLE_RATE, tone, 0.0)
    noisy = (speech + rng.normal(0, 0.003, n)).astype(np.float32)
    cleaned = frontend.reduce_noise(noisy, frontend.noise_profile(noisy))
    pause = slice(3 * SAMPLE_RATE, 4 * SAMPLE_RATE)
    voiced = slice(SAMPLE_RATE // 2, SAMPLE_RATE)
    assert np.std(cleaned[pause]) < 0.5 * np.std(noisy[pause])  # >6 dB less noise
    assert np.std(cleaned[voiced]) == pytest.approx(np.std(noisy[voiced]), rel=0.05)


def test_noise_reduction_leaves_audio_without_pauses_alone():
    import frontend

    rng = np.random.default_rng(4)
    steady = rng.normal(0, 0.1, SAMPLE_RATE * 10).astype(np.float32)  # no pause to learn from
    assert frontend.noise_profile(steady) is None
    assert frontend.reduce_noise(steady, None) is steady


def test_noise_reduction_in_blocks_equals_one_whole_stft():
    import frontend

    rng = np.random.default_rng(5)
    n = frontend.BLOCK * 3 + 777
    audio = (rng.normal(0, 0.003, n) + 0.3 * (np.arange(n) % 40000 < 15000)
             * np.sin(np.arange(n) * 0.07)).astype(np.float32)
    profile = frontend.noise_profile(audio)
    assert profile is not None
    np.testing.assert_allclose(frontend.reduce_noise(audio, profile),
                               frontend._subtract(audio, profile), atol=1e-6)

"""The CPU diarizer: numpy GE2E encoder (weights read without torch) and the
VAD -> embeddings -> clustering -> turns pipeline, on espeak-ng conversations
with known speakers (needs espeak-ng and sox, installed by scripts/setup test)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

import speaker_encoder as se
from cpu_diarize import CpuDiarizer
from speaker_profiles import PROFILES
from engine_base import Diarization, EngineError, Turn
from testaudio.evaluate import der
from testaudio.generate import VOICES, Conversation, make_conversation, synthesize


def _read(conv: Conversation) -> np.ndarray:
    with wave.open(str(conv.wav), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float32) / 32768


def _der(conv: Conversation, result: Diarization) -> float:
    ref = [(line.start, line.end, line.speaker) for line in conv.lines]
    return der(ref, [(t.start, t.end, t.speaker) for t in result.turns])


@pytest.fixture(scope="module")
def diarizer() -> CpuDiarizer:
    """The GE2E profile: espeak-ng voices are this file's test speech, and to CAM++ (a
    model of real voices, the default) two male espeak variants are one person (cosine
    0.86). CAM++ is tested on real people in test_real_diarization.py."""
    d = CpuDiarizer(PROFILES["ge2e"])
    d.load()
    return d


@pytest.fixture(scope="module")
def conversations(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Conversation]:
    """Seeded ~35 s conversations with 1, 2 and 3 voices."""
    root = tmp_path_factory.mktemp("conversations")
    return {n: make_conversation(root / str(n), speakers=n, seconds=35, seed=seed)
            for n, seed in ((1, 1), (2, 2), (3, 4))}


# ---------------------------------------------------------------- weights


def test_bundled_weights_have_the_voice_encoder_shapes() -> None:
    weights = se.load_encoder_weights()
    expected = {"lstm.weight_ih_l0": (1024, 40), "linear.weight": (256, 256), "linear.bias": (256,)}
    for layer in range(3):
        expected[f"lstm.weight_hh_l{layer}"] = (1024, 256)
        expected[f"lstm.bias_ih_l{layer}"] = (1024,)
        expected[f"lstm.bias_hh_l{layer}"] = (1024,)
        if layer:
            expected[f"lstm.weight_ih_l{layer}"] = (1024, 256)
    assert {k: v.shape for k, v in weights.items()} == expected
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in weights.values())


def test_damaged_or_missing_weights_are_a_load_error(tmp_path, monkeypatch) -> None:
    damaged = tmp_path / "ge2e_weights.npz"
    data = bytearray(se.WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(se, "WEIGHTS", damaged)
    with pytest.raises(se.EngineError, match="damaged"):
        se.load_encoder_weights()
    monkeypatch.setattr(se, "WEIGHTS", tmp_path / "gone.npz")
    with pytest.raises(se.EngineError, match="missing"):
        se.load_encoder_weights()


# ---------------------------------------------------------------- embeddings


def test_embeddings_are_unit_length_and_tell_voices_apart() -> None:
    encoder = se.SpeakerEncoder.load()

    def say(text: str, voice: int) -> np.ndarray:
        return synthesize(text, VOICES[voice]).astype(np.float32) / 32768

    a1 = encoder.embed_utterance(say("We should review the final budget before Friday.", 0))
    a2 = encoder.embed_utterance(say("Can you send the updated schedule to the team?", 0))
    b1 = encoder.embed_utterance(say("We should review the final budget before Friday.", 1))
    for emb in (a1, a2, b1):
        assert emb.shape == (256,)
        assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
    assert a1 @ a2 > a1 @ b1 + 0.1  # same voice, other words beats other voice, same words
    windows = encoder.embed_windows(np.zeros(16000, np.float32) + 0.01, [(0, 8000), (4000, 16000)])
    assert windows.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(windows, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- diarization


@pytest.mark.parametrize("speakers", [2, 3])
def test_finds_the_speakers_of_a_short_conversation(
        diarizer: CpuDiarizer, conversations: dict[int, Conversation], speakers: int) -> None:
    conv = conversations[speakers]
    result = diarizer.diarize(_read(conv))
    assert result.speakers == [f"Speaker_{i}" for i in range(speakers)]
    assert _der(conv, result) <= 0.10
    assert all(0.0 <= t.confidence <= 1.0 and t.end > t.start for t in result.turns)
    assert result.turns == sorted(result.turns, key=lambda t: t.start)


def test_one_voice_is_one_speaker(diarizer: CpuDiarizer,
                                  conversations: dict[int, Conversation]) -> None:
    conv = conversations[1]
    result = diarizer.diarize(_read(conv))
    assert result.speakers == ["Speaker_0"]
    assert _der(conv, result) <= 0.10


def test_two_close_male_voices_are_two_speakers(diarizer: CpuDiarizer,
                                                 tmp_path: Path) -> None:
    """Seed 12's en-us+m3 and en-gb+m1 sit 0.062 apart in GE2E space, under the
    centroid threshold: they were one speaker until the MFCC ΔBIC test."""
    conv = make_conversation(tmp_path, speakers=4, seconds=150, seed=12)
    result = diarizer.diarize(_read(conv))
    assert result.speakers == [f"Speaker_{i}" for i in range(4)]
    assert _der(conv, result) <= 0.06


def test_max_speakers_caps_the_count(diarizer: CpuDiarizer,
                                     conversations: dict[int, Conversation]) -> None:
    assert diarizer.diarize(_read(conversations[3]), max_speakers=1).speakers == ["Speaker_0"]


@pytest.mark.parametrize("audio", [np.zeros(5 * 16000, np.float32),
                                   np.random.default_rng(0).normal(0, 0.001, 5 * 16000),
                                   np.zeros(100, np.float32)])
def test_silence_has_no_turns(diarizer: CpuDiarizer, audio: np.ndarray) -> None:
    assert diarizer.diarize(audio.astype(np.float32)).turns == []


def test_fingerprints_one_unit_vector_per_speaker(
        diarizer: CpuDiarizer, conversations: dict[int, Conversation]) -> None:
    audio = _read(conversations[2])
    result = diarizer.diarize(audio)
    prints = diarizer.fingerprints(audio, result)
    assert sorted(prints) == result.speakers
    vectors = np.array([prints[s] for s in result.speakers])
    assert vectors.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] < 0.9
    assert diarizer.fingerprints(audio, Diarization(turns=[])) == {}


def test_failures_are_engine_errors(diarizer: CpuDiarizer, conversations: dict[int, Conversation],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> np.ndarray:
        raise RuntimeError("boom")

    audio = _read(conversations[2])
    monkeypatch.setattr(diarizer.encoder, "embed_windows", broken)
    with pytest.raises(EngineError) as err:
        diarizer.diarize(audio)
    assert err.value.stage == "diarize"
    with pytest.raises(EngineError) as err:
        diarizer.fingerprints(audio, Diarization([Turn(0.5, 3.0, "Speaker_0", 1.0)]))
    assert err.value.stage == "fingerprint"

"""The NeMo engine against the `nemo`/`torch` stand-ins in tests/standins.

The stand-ins return what the real APIs return (shapes checked in NVIDIA/NeMo):
- transcribe(): list[Hypothesis] with .text and .timestamp {'word','segment','char'} of
  dicts {'word'|'segment', 'start_offset', 'end_offset', 'start', 'end'}, seconds =
  offset x window_stride (0.01) x subsampling_factor (8)
  (nemo/collections/asr/parts/utils/timestamp_utils.py, process_timestamp_outputs);
  old RNNT releases returned a (best, all) tuple (rnnt_models.py docstring).
- diarize(include_tensor_outputs=True): ([["begin end speaker_N", ...]],
  [Tensor[1, frames, 4]]), 80 ms frames (sortformer_diar_models.py
  _diarize_output_processing; HF model cards of diar_sortformer_4spk-v1 / v2.1).
- infer_segment(array): (Tensor[1, 192] on the model's device, logits)
  (nemo/collections/asr/models/label_models.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDINS = ROOT / "tests" / "standins"
PATCHES = ROOT / "image" / "parakeet_patches"
SR = 16000
ENV = ("ASR_MODEL", "DIAR_MODEL", "EMBEDDING_MODEL", "LONG_AUDIO_S")


def _is_standin(module: ModuleType) -> bool:
    return str(getattr(module, "__file__", "") or "").startswith(str(STANDINS))


def _forget() -> None:
    """Drop cached stand-in modules (and the engine that imported them)."""
    for name, module in list(sys.modules.items()):
        if name == "engine_nemo" or (name.split(".")[0] in ("nemo", "torch")
                                     and _is_standin(module)):
            del sys.modules[name]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SimpleNamespace]:
    """Stand-in nemo/torch first on sys.path, a fresh engine module, temp files in tmp_path."""
    for name in ("nemo", "torch"):
        if name in sys.modules and not _is_standin(sys.modules[name]):
            pytest.skip(f"the real {name} is already imported")
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(str(PATCHES))
    monkeypatch.syspath_prepend(str(STANDINS))
    _forget()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # to see leftovers
    standin = importlib.import_module("nemo._standin")
    yield SimpleNamespace(state=standin.reset(), torch=importlib.import_module("torch"),
                          models=importlib.import_module("nemo.collections.asr.models"),
                          mod=importlib.import_module("engine_nemo"), tmp=tmp_path)
    _forget()


def engine(fake: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    eng = fake.mod.NemoEngine()
    eng.load()
    return eng


def tone(seconds: float, hz: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def turns_of(diarization: Any) -> list[tuple[float, float, str, float]]:
    return [(t.start, t.end, t.speaker, round(t.confidence, 3)) for t in diarization.turns]


# ------------------------------------------------------------------ import and load


def test_imports_without_nemo_and_load_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("nemo") is not None:
        pytest.skip("a real nemo is installed here")
    monkeypatch.syspath_prepend(str(PATCHES))
    sys.modules.pop("engine_nemo", None)
    mod = importlib.import_module("engine_nemo")
    try:
        eng = mod.NemoEngine()
        assert (eng.name, eng.asr_loaded, eng.diarizer_loaded) == ("nemo", False, False)
        with pytest.raises(mod.EngineError) as error:
            eng.load()
        assert error.value.stage == "load"
        with pytest.raises(mod.EngineError) as error:
            eng.transcribe(np.zeros(SR, dtype=np.float32))
        assert error.value.stage == "transcribe"
    finally:
        sys.modules.pop("engine_nemo", None)


def test_load_takes_names_from_env_and_uses_the_gpu(fake, monkeypatch) -> None:
    fake.torch.cuda.available = True
    eng = engine(fake, monkeypatch, ASR_MODEL="nvidia/parakeet-tdt-0.6b-v2",
                 DIAR_MODEL="nvidia/diar_streaming_sortformer_4spk-v2.1",
                 EMBEDDING_MODEL="titanet_large")
    loads = [(c["cls"], c["model_name"], c["map_location"])
             for c in fake.state.calls_to("from_pretrained")]
    assert loads == [("ASRModel", "nvidia/parakeet-tdt-0.6b-v2", "cuda"),
                     ("SortformerEncLabelModel", "nvidia/diar_streaming_sortformer_4spk-v2.1", "cuda"),
                     ("EncDecSpeakerLabelModel", "titanet_large", "cuda")]
    assert (eng.asr_loaded, eng.diarizer_loaded, eng.device) == (True, True, "cuda")
    eng.load()  # once only
    assert len(fake.state.calls_to("from_pretrained")) == 3


def test_defaults_on_cpu(fake, monkeypatch) -> None:
    eng = engine(fake, monkeypatch)
    assert (eng.asr_model, eng.diarizer_model, eng.embedding_model) == (
        "nvidia/parakeet-tdt-0.6b-v3", "nvidia/diar_sortformer_4spk-v1",
        "nvidia/speakerverification_en_titanet_large")
    assert {c["map_location"] for c in fake.state.calls_to("from_pretrained")} == {"cpu"}
    assert eng.long_audio_s == 480.0
    assert fake.state.calls_to("_check_streaming_parameters") == []  # v1 is not streaming


@pytest.mark.parametrize("failure", ["ASRModel.from_pretrained",
                                     "EncDecSpeakerLabelModel.from_pretrained"])
def test_load_failures_are_load_errors(fake, monkeypatch, failure) -> None:
    fake.state.fail[failure] = OSError("disk full")
    eng = fake.mod.NemoEngine()
    with pytest.raises(fake.mod.EngineError) as error:
        eng.load()
    assert error.value.stage == "load" and "disk full" in error.value.message
    assert eng.diarizer_loaded is False


def test_unknown_model_is_a_load_error(fake, monkeypatch) -> None:
    monkeypatch.setenv("DIAR_MODEL", "nvidia/no-such-diarizer")
    eng = fake.mod.NemoEngine()
    with pytest.raises(fake.mod.EngineError) as error:
        eng.load()
    assert error.value.stage == "load" and "no-such-diarizer" in error.value.message
    assert (eng.asr_loaded, eng.diarizer_loaded) == (True, False)


def test_streaming_sortformer_gets_the_model_card_preset(fake, monkeypatch) -> None:
    engine(fake, monkeypatch, DIAR_MODEL="nvidia/diar_streaming_sortformer_4spk-v2.1")
    [checked] = fake.state.calls_to("_check_streaming_parameters")
    assert {k: checked[k] for k in fake.mod.STREAMING_PRESET} == {
        "chunk_len": 340, "chunk_right_context": 40, "fifo_len": 40,
        "spkcache_update_period": 300, "spkcache_len": 188}


def test_rejected_streaming_parameters_fail_the_load(fake, monkeypatch) -> None:
    monkeypatch.setitem(fake.mod.STREAMING_PRESET, "spkcache_len", 8)  # below 4 x (1 + 3)
    monkeypatch.setenv("DIAR_MODEL", "nvidia/diar_streaming_sortformer_4spk-v2.1")
    with pytest.raises(fake.mod.EngineError) as error:
        fake.mod.NemoEngine().load()
    assert error.value.stage == "load" and "spkcache_len" in error.value.message


# ------------------------------------------------------------------ transcription

HEARD = [("Hello,", 0, 5), ("world.", 6, 12), ("How", 15, 18), ("are", 18, 20),
         ("you?", 20, 26), ("Late.", 36, 40)]  # offsets in 80 ms frames


def test_words_and_segments_from_hypothesis_timestamps(fake, monkeypatch) -> None:
    fake.state.heard = HEARD
    eng = engine(fake, monkeypatch)
    result = eng.transcribe(np.zeros(3 * SR, dtype=np.float32))  # 37.5 frames: no "Late."
    words = [(w.word, w.start, w.end) for w in result.words]
    assert words == [("Hello,", 0.0, 0.4), ("world.", 0.48, 0.96), ("How", 1.2, 1.44),
                     ("are", 1.44, 1.6), ("you?", 1.6, 2.08)]
    assert [(s.start, s.end, s.text) for s in result.segments] == [
        (0.0, 0.96, "Hello, world."), (1.2, 2.08, "How are you?")]
    assert result.text == "Hello, world. How are you?"
    [call] = fake.state.calls_to("transcribe")
    assert (call["kinds"], call["timestamps"], call["batch_size"]) == (
        ["ndarray:float32"], True, 1)


def test_offsets_only_are_scaled_by_the_models_stride(fake, monkeypatch) -> None:
    original = fake.models.ASRModel.__init__

    def four_x(self, name, map_location):  # a 4x-subsampling model: 40 ms per offset
        original(self, name, map_location)
        self.encoder["subsampling_factor"] = 4
    monkeypatch.setattr(fake.models.ASRModel, "__init__", four_x)
    fake.state.heard, fake.state.convert_offsets = HEARD[:2], False
    result = engine(fake, monkeypatch).transcribe(np.zeros(2 * SR, dtype=np.float32))
    assert [(w.word, w.start, w.end) for w in result.words] == [
        ("Hello,", 0.0, 0.2), ("world.", 0.24, 0.48)]


@pytest.mark.parametrize("shape", ["list", "tuple"])
def test_seconds_win_over_offsets_and_old_tuple_output_works(fake, monkeypatch, shape) -> None:
    hyp_cls = importlib.import_module("nemo.collections.asr.parts.utils.rnnt_utils").Hypothesis
    hyp = hyp_cls(score=0.0, y_sequence=[], text="Hi there", timestamp={
        "word": [{"word": "Hi", "start_offset": 1, "end_offset": 2, "start": 0.1, "end": 0.25},
                 {"word": "there", "start_offset": 3, "end_offset": 9, "start": 0.3, "end": 0.7}],
        "segment": [], "char": []})
    fake.state.asr_output = [hyp] if shape == "list" else ([hyp], [[hyp]])
    result = engine(fake, monkeypatch).transcribe(np.zeros(SR, dtype=np.float32))
    assert [(w.word, w.start, w.end) for w in result.words] == [("Hi", 0.1, 0.25),
                                                                ("there", 0.3, 0.7)]
    assert [(s.start, s.end, s.text) for s in result.segments] == [(0.1, 0.7, "Hi there")]


def test_long_audio_switches_to_local_attention_and_back(fake, monkeypatch) -> None:
    fake.state.full_attention_limit_s = 2.5  # full attention "OOMs" above this
    eng = engine(fake, monkeypatch, LONG_AUDIO_S="2")
    eng.transcribe(np.zeros(3 * SR, dtype=np.float32))
    eng.transcribe(np.zeros(3 * SR, dtype=np.float32))
    eng.transcribe(np.zeros(SR, dtype=np.float32))
    switches = [(c["self_attention_model"], c["att_context_size"])
                for c in fake.state.calls_to("change_attention_model")]
    assert switches == [("rel_pos_local_attn", [256, 256]), ("rel_pos", [-1, -1])]
    assert [c["factor"] for c in fake.state.calls_to("change_subsampling_conv_chunking_factor")] == [1]
    assert [c["attention"] for c in fake.state.calls_to("transcribe")] == [
        "rel_pos_local_attn", "rel_pos_local_attn", "rel_pos"]


def test_without_the_switch_long_audio_fails_as_a_transcribe_error(fake, monkeypatch) -> None:
    fake.state.full_attention_limit_s = 2.5
    eng = engine(fake, monkeypatch)  # LONG_AUDIO_S 480: stays on full attention
    with pytest.raises(fake.mod.EngineError) as error:
        eng.transcribe(np.zeros(3 * SR, dtype=np.float32))
    assert error.value.stage == "transcribe" and "out of memory" in error.value.message


def test_silence_and_bad_shapes(fake, monkeypatch) -> None:
    eng = engine(fake, monkeypatch)
    assert eng.transcribe(np.zeros(0, dtype=np.float32)).words == []
    assert eng.diarize(np.zeros(10, dtype=np.float32)).turns == []
    assert fake.state.calls_to("transcribe") == fake.state.calls_to("diarize") == []
    with pytest.raises(fake.mod.EngineError) as error:
        eng.transcribe(np.zeros((SR, 2), dtype=np.float32))
    assert error.value.stage == "transcribe"


# ------------------------------------------------------------------ diarization


def probs_for(frames: int, runs: list[tuple[int, int, int, list[float]]]) -> np.ndarray:
    """[frames, 4] activity: each run (speaker, first, last, values cycled over it)."""
    probs = np.full((frames, 4), 0.05, dtype=np.float32)
    for spk, first, last, values in runs:
        probs[first:last, spk] = np.resize(values, last - first)
    return probs


def test_turns_from_segment_lines_with_mean_frame_confidence(fake, monkeypatch) -> None:
    # speaker_2 speaks first, so it becomes Speaker_0 (arrival order)
    fake.state.diar_probs = probs_for(63, [(2, 0, 30, [0.8, 1.0]), (0, 30, 50, [0.7]),
                                           (2, 50, 63, [0.8])])
    eng = engine(fake, monkeypatch)
    audio = tone(5, 300)
    result = eng.diarize(audio)
    assert turns_of(result) == [(0.0, 2.4, "Speaker_0", 0.9), (2.4, 4.0, "Speaker_1", 0.7),
                                (4.0, 5.04, "Speaker_0", 0.8)]
    assert result.speakers == ["Speaker_0", "Speaker_1"]
    [call] = fake.state.calls_to("diarize")
    assert (call["batch_size"], call["include_tensor_outputs"], call["samples"]) == (
        1, True, [len(audio)])
    assert not Path(call["paths"][0]).exists()
    assert list(fake.tmp.iterdir()) == []  # the temp WAV and its folder are gone


def test_scripted_overlapping_lines_relabel_by_first_appearance(fake, monkeypatch) -> None:
    fake.state.diar_lines = ["0.50 2.00 speaker_3", "0.00 1.00 speaker_1", "bad line"]
    fake.state.diar_probs = probs_for(40, [(3, 6, 25, [0.6]), (1, 0, 13, [0.95])])
    result = engine(fake, monkeypatch).diarize(tone(3, 200))
    assert turns_of(result) == [(0.0, 1.0, "Speaker_0", 0.95), (0.5, 2.0, "Speaker_1", 0.6)]


def test_max_speakers_merges_the_weakest_into_the_most_active(fake, monkeypatch) -> None:
    fake.state.diar_probs = probs_for(57, [(0, 0, 25, [0.9]), (1, 25, 50, [0.9]),
                                           (2, 50, 57, [0.6]), (1, 50, 57, [0.4])])
    eng = engine(fake, monkeypatch)
    assert len(eng.diarize(tone(4.5, 200)).speakers) == 3
    capped = eng.diarize(tone(4.5, 200), max_speakers=2)
    # speaker_2's turn goes to speaker_1 (0.4 > 0.05) and joins its touching turn;
    # confidence is duration-weighted: (2.0 x 0.9 + 0.56 x 0.4) / 2.56
    assert turns_of(capped) == [(0.0, 2.0, "Speaker_0", 0.9),
                                (2.0, 4.56, "Speaker_1", round((1.8 + 0.56 * 0.4) / 2.56, 3))]


def test_diarize_failure_is_a_diarize_error_and_leaves_no_file(fake, monkeypatch) -> None:
    eng = engine(fake, monkeypatch)
    fake.state.fail["diarize"] = RuntimeError("CUDA error: an illegal memory access")
    with pytest.raises(fake.mod.EngineError) as error:
        eng.diarize(tone(2, 200))
    assert error.value.stage == "diarize" and "illegal memory" in error.value.message
    assert list(fake.tmp.iterdir()) == []


# ------------------------------------------------------------------ fingerprints


def test_fingerprints_one_normalised_embedding_per_speaker(fake, monkeypatch) -> None:
    fake.torch.cuda.available = True  # embeddings come back on "cuda": needs .cpu()
    eng = engine(fake, monkeypatch)
    turn = fake.mod.Turn
    audio = np.concatenate([tone(2, 440), tone(2, 1200), tone(2, 440)])
    diarization = fake.mod.Diarization([turn(0, 2, "Speaker_0", 0.9),
                                        turn(2, 4, "Speaker_1", 0.9),
                                        turn(4, 6, "Speaker_0", 0.9)])
    prints = eng.fingerprints(audio, diarization)
    assert sorted(prints) == ["Speaker_0", "Speaker_1"]
    assert all(len(v) == 192 and math.isclose(np.linalg.norm(v), 1.0, abs_tol=1e-6)
               for v in prints.values())
    assert cosine(prints["Speaker_0"], prints["Speaker_1"]) < 0.5
    assert [c["samples"] for c in fake.state.calls_to("infer_segment")] == [4 * SR, 2 * SR]
    same_voice = eng.fingerprints(tone(3, 440), fake.mod.Diarization([turn(0, 3, "Speaker_0", 1)]))
    assert cosine(same_voice["Speaker_0"], prints["Speaker_0"]) > 0.99


def test_fingerprint_uses_at_most_30s_of_the_longest_turns(fake, monkeypatch) -> None:
    eng = engine(fake, monkeypatch)
    audio = np.random.default_rng(7).uniform(-0.5, 0.5, 42 * SR).astype(np.float32)
    turn = fake.mod.Turn
    diarization = fake.mod.Diarization([
        turn(0, 12, "Speaker_0", 1), turn(12.5, 40, "Speaker_0", 1),
        turn(41, 41.3, "Speaker_1", 1)])  # 0.3 s: too little voice for a fingerprint
    prints = eng.fingerprints(audio, diarization)
    assert list(prints) == ["Speaker_0"]
    [call] = fake.state.calls_to("infer_segment")
    # longest first (27.5 s), topped up from the next (2.5 s), joined in time order
    expected = np.concatenate([audio[: int(2.5 * SR)], audio[int(12.5 * SR): 40 * SR]])
    assert call["samples"] == 30 * SR
    assert math.isclose(call["checksum"], float(np.abs(expected).sum()), rel_tol=1e-6)


def test_fingerprint_failure_is_a_fingerprint_error(fake, monkeypatch) -> None:
    eng = engine(fake, monkeypatch)
    fake.state.fail["infer_segment"] = RuntimeError("cuDNN error")
    diarization = fake.mod.Diarization([fake.mod.Turn(0, 2, "Speaker_0", 1)])
    with pytest.raises(fake.mod.EngineError) as error:
        eng.fingerprints(tone(2, 440), diarization)
    assert error.value.stage == "fingerprint"


# ------------------------------------------------------------------ threads


def test_model_calls_never_overlap(fake, monkeypatch) -> None:
    fake.state.heard, fake.state.delay_s = HEARD[:2], 0.05
    fake.state.diar_probs = probs_for(25, [(0, 0, 25, [0.9])])
    eng = engine(fake, monkeypatch)
    audio = tone(2, 440)
    diarization = fake.mod.Diarization([fake.mod.Turn(0, 2, "Speaker_0", 1)])
    jobs = [lambda: eng.transcribe(audio), lambda: eng.diarize(audio),
            lambda: eng.fingerprints(audio, diarization), lambda: eng.transcribe(audio)]
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.state.calls) > 4 and fake.state.max_active == 1

"""The engine's three calls on the real models: what comes back, and that it fits the clip."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine_base import Diarization, Turn

SR = 16000


@pytest.mark.parametrize("seconds", [5.0, 8.0, 13.37, 45.0])
def test_word_and_segment_times_never_pass_the_clip(engine, speech, seconds):
    result = engine.transcribe(speech[: int(seconds * SR)])
    assert result.words, "the tiny TDT model (seed 2) emits words on speech"
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= seconds for w in result.words), result.words[-3:]
    assert all(0 <= s.start <= s.end <= seconds for s in result.segments)
    assert result.text == " ".join(w.word for w in result.words)


def test_the_last_word_reaches_but_does_not_pass_the_end(engine, speech):
    """The unclamped TDT answer ends after the clip (45.12 s on 45 s with these weights)."""
    audio = speech[: 45 * SR]
    raw = engine._asr.transcribe(audio=[audio], batch_size=1, timestamps=True, verbose=False)
    assert raw[0].timestamp["word"][-1]["end"] > 45.0
    assert engine.transcribe(audio).words[-1].end == 45.0


def test_too_short_and_badly_shaped_input(engine, monkeypatch):
    import engine_nemo

    calls = []
    monkeypatch.setattr(engine._asr, "transcribe", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(engine._diar, "diarize", lambda *a, **k: calls.append(a))
    assert engine.transcribe(np.zeros(800, dtype=np.float32)).words == []
    assert engine.diarize(np.zeros(10, dtype=np.float32)).turns == []
    assert calls == []
    with pytest.raises(engine_nemo.EngineError) as error:
        engine.transcribe(np.zeros((SR, 2), dtype=np.float32))
    assert error.value.stage == "transcribe"


@pytest.mark.parametrize("diarizer", ["sortformer", "sortformer_streaming"])
def test_turns_fit_the_clip_and_are_labelled_by_first_appearance(make_engine, tiny, speech,
                                                                 diarizer, temp_dir):
    engine = make_engine(DIAR_MODEL=str(tiny[diarizer]))
    seconds = 13.37
    result = engine.diarize(speech[: int(seconds * SR)])
    assert result.turns
    assert all(0 <= t.start < t.end <= seconds and 0 <= t.confidence <= 1
               for t in result.turns)
    assert [t.start for t in result.turns] == sorted(t.start for t in result.turns)
    first_seen = list(dict.fromkeys(t.speaker for t in result.turns))
    assert first_seen == [f"Speaker_{i}" for i in range(len(first_seen))]
    assert list(temp_dir.iterdir()) == []  # the WAV handed to Sortformer is gone


def test_max_speakers_keeps_the_strongest_and_loses_no_speech(engine, speech):
    audio = speech[: 20 * SR]
    free = engine.diarize(audio)
    capped = engine.diarize(audio, max_speakers=1)
    assert len(free.speakers) > 1 and capped.speakers == ["Speaker_0"]
    covered = lambda d: {round(x, 2) for t in d.turns for x in np.arange(t.start, t.end, 0.08)}
    assert covered(free) <= covered(capped) | {round(free.turns[-1].end, 2)}


def test_one_unit_fingerprint_per_speaker_and_the_same_voice_twice(engine, speech):
    audio = speech[: 12 * SR]
    diarization = Diarization([Turn(0, 6, "Speaker_0", 1.0), Turn(6, 12, "Speaker_1", 1.0),
                               Turn(11.8, 12, "Speaker_2", 1.0)])  # 0.2 s: too little
    prints = engine.fingerprints(audio, diarization)
    assert sorted(prints) == ["Speaker_0", "Speaker_1"]
    assert all(len(v) == 192 and abs(np.linalg.norm(v) - 1) < 1e-6 for v in prints.values())
    again = engine.fingerprints(audio, diarization)
    assert np.allclose(again["Speaker_0"], prints["Speaker_0"], atol=1e-6)
    assert not np.allclose(prints["Speaker_0"], prints["Speaker_1"], atol=1e-3)


# ------------------------------------------------------------------ faults, on the real models


def test_a_cuda_out_of_memory_is_a_transcribe_error(engine, monkeypatch, speech):
    import engine_nemo

    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(engine._asr.encoder, "forward", oom)  # deep inside transcribe()
    with pytest.raises(engine_nemo.EngineError) as error:
        engine.transcribe(speech[: 3 * SR])
    assert error.value.stage == "transcribe" and "CUDA out of memory" in error.value.message


def test_a_diarizer_failure_is_a_diarize_error_and_leaves_no_file(engine, monkeypatch,
                                                                 speech, temp_dir):
    import engine_nemo

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(engine._diar, "forward", broken)
    with pytest.raises(engine_nemo.EngineError) as error:
        engine.diarize(speech[: 3 * SR])
    assert error.value.stage == "diarize" and "illegal memory access" in error.value.message
    assert list(temp_dir.iterdir()) == []


def test_a_fingerprint_failure_is_a_fingerprint_error(engine, monkeypatch, speech):
    import engine_nemo

    def broken(*args, **kwargs):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")

    monkeypatch.setattr(engine._emb, "forward", broken)
    diarization = Diarization([Turn(0, 2, "Speaker_0", 1.0)])
    with pytest.raises(engine_nemo.EngineError) as error:
        engine.fingerprints(speech[: 2 * SR], diarization)
    assert error.value.stage == "fingerprint" and "CUDNN" in error.value.message


def test_model_calls_never_overlap(engine, monkeypatch, speech):
    active, peak, lock = [0], [0], threading.Lock()

    def counted(model, method):
        real = getattr(model, method)

        def call(*args, **kwargs):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                return real(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1
        monkeypatch.setattr(model, method, call)

    counted(engine._asr, "transcribe")
    counted(engine._diar, "diarize")
    counted(engine._emb, "infer_segment")
    audio = speech[: 4 * SR]
    diarization = Diarization([Turn(0, 4, "Speaker_0", 1.0)])
    jobs = [lambda: engine.transcribe(audio), lambda: engine.diarize(audio),
            lambda: engine.fingerprints(audio, diarization), lambda: engine.transcribe(audio)]
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 1 and active[0] == 0

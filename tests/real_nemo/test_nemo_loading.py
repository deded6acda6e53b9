"""Loading through the engine's own path: hub names from an offline cache, .nemo files,
and the errors a person can act on when a model is missing or wrong."""

from __future__ import annotations

import logging

import pytest
from nemo.collections.asr import models

import tiny_models


def test_default_hub_names_load_offline_from_the_cache(make_engine):
    engine = make_engine()
    assert (engine.asr_model, engine.diarizer_model, engine.embedding_model) == (
        tiny_models.ASR_NAME, tiny_models.SORTFORMER_NAMES["offline"],
        tiny_models.EMBEDDING_NAME)
    assert (engine.asr_loaded, engine.diarizer_loaded, engine.device) == (True, True, "cpu")
    assert isinstance(engine._asr, models.EncDecRNNTBPEModel)
    assert isinstance(engine._diar, models.SortformerEncLabelModel)
    assert isinstance(engine._emb, models.EncDecSpeakerLabelModel)
    assert not engine._asr.training  # eval mode: no dropout at inference


def test_local_nemo_files_load_with_restore_from(make_engine, tiny):
    engine = make_engine(ASR_MODEL=str(tiny["tdt_bias"]), DIAR_MODEL=str(tiny["sortformer"]),
                         EMBEDDING_MODEL=str(tiny["titanet"]))
    assert engine._asr.cfg.encoder.use_bias is True  # the file, not the cached name
    assert (engine.asr_loaded, engine.diarizer_loaded) == (True, True)


def test_a_name_that_is_not_cached_says_what_to_do(make_engine):
    import engine_nemo

    with pytest.raises(engine_nemo.EngineError) as error:
        make_engine(DIAR_MODEL="nvidia/diar_sortformer_9spk-v9")
    message = error.value.message
    assert error.value.stage == "load"
    for words in ("DIAR_MODEL=nvidia/diar_sortformer_9spk-v9", "not in the Hugging Face cache",
                  "HF_HUB_OFFLINE", "huggingface-cli download", ".nemo file"):
        assert words in message, message
    assert "Traceback" not in message


def test_a_missing_file_and_a_wrong_kind_of_model_are_named(make_engine, tiny, tmp_path):
    import engine_nemo

    with pytest.raises(engine_nemo.EngineError) as error:
        make_engine(ASR_MODEL=str(tmp_path / "parakeet.nemo"))
    assert "no such file" in error.value.message and "ASR_MODEL" in error.value.message
    with pytest.raises(engine_nemo.EngineError) as error:
        make_engine(EMBEDDING_MODEL=str(tiny["sortformer"]))
    assert "holds a SortformerEncLabelModel, not a EncDecSpeakerLabelModel" in str(error.value)
    broken = tmp_path / "broken.nemo"
    broken.write_bytes(b"not a tar archive")
    with pytest.raises(engine_nemo.EngineError) as error:
        make_engine(ASR_MODEL=str(broken))
    assert "is not a loadable .nemo file" in error.value.message


@pytest.fixture
def nemo_warnings(caplog):
    """NeMo's own logger (it does not propagate to the root logger)."""
    logger = logging.getLogger("nemo_logger")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="nemo_logger")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.parametrize("source", ["hub name", "file"])
def test_streaming_sortformer_gets_the_preset_without_warnings(make_engine, tiny, source,
                                                               nemo_warnings):
    import engine_nemo

    name = (tiny_models.SORTFORMER_NAMES["streaming"] if source == "hub name"
            else str(tiny["sortformer_streaming"]))  # no "streaming" in the file name
    engine = make_engine(DIAR_MODEL=name)
    modules = engine._diar.sortformer_modules
    assert {k: getattr(modules, k) for k in engine_nemo.STREAMING_PRESET} == \
        engine_nemo.STREAMING_PRESET
    said = [r.getMessage() for r in nemo_warnings.records if "spkcache" in r.getMessage()]
    assert said == []
    modules.spkcache_update_period = 300  # the model card's value: NeMo does warn
    modules._check_streaming_parameters()
    assert any("spkcache_update_period (300)" in r.getMessage() for r in nemo_warnings.records)


def test_rejected_streaming_parameters_fail_the_load(make_engine, monkeypatch):
    import engine_nemo

    monkeypatch.setitem(engine_nemo.STREAMING_PRESET, "spkcache_len", 8)  # < (1 + 3) x 4
    with pytest.raises(engine_nemo.EngineError) as error:
        make_engine(DIAR_MODEL=tiny_models.SORTFORMER_NAMES["streaming"])
    assert error.value.stage == "load" and "spkcache_len" in error.value.message

"""Long inputs run on local attention, and leave the model exactly as it was loaded.

NeMo 3.0's own `change_attention_model` rebuilds the attention layers without the
checkpoint's `use_bias` and copies weights with strict=False: a `use_bias: false` model
(Parakeet TDT 0.6B) gets random q/k/v/out biases, and stays damaged after switching
back. The engine keeps both variants and swaps them by reference (nemo_attention.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

SR = 16000
LONG_AUDIO_S = 6.0


def encoder_output(model, audio: np.ndarray) -> np.ndarray:
    model.eval()  # transcribe() leaves the modules in train mode; dropout is 0 anyway
    with torch.no_grad():
        features, length = model.preprocessor(input_signal=torch.tensor(audio)[None],
                                              length=torch.tensor([audio.size]))
        return model.encoder(audio_signal=features, length=length)[0].numpy()


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def attention_seen(model, monkeypatch) -> list[str]:
    """The encoder's attention at each transcribe() call."""
    seen: list[str] = []
    real = model.transcribe

    def spy(*args, **kwargs):
        seen.append(model.encoder.self_attention_model)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "transcribe", spy)
    return seen


@pytest.mark.parametrize("model", ["tdt_nobias", "tdt_bias"])
def test_any_mix_of_long_and_short_inputs_leaves_the_encoder_as_loaded(
        make_engine, tiny, speech, model, monkeypatch):
    engine = make_engine(ASR_MODEL=str(tiny[model]), LONG_AUDIO_S=str(LONG_AUDIO_S))
    asr = engine._asr
    short, long = speech[: 5 * SR], speech[: 8 * SR]
    before = encoder_output(asr, short)
    words_before = [(w.word, w.start, w.end) for w in engine.transcribe(short).words]
    params_before = sum(p.numel() for p in asr.parameters())
    seen = attention_seen(asr, monkeypatch)
    for audio in (long, short, long, long, noise(7, 1), short):
        engine.transcribe(audio)
    assert seen == ["rel_pos_local_attn", "rel_pos", "rel_pos_local_attn",
                    "rel_pos_local_attn", "rel_pos_local_attn", "rel_pos"]
    assert np.abs(encoder_output(asr, short) - before).max() <= 1e-5
    assert [(w.word, w.start, w.end) for w in engine.transcribe(short).words] == words_before
    # the local variant shares the full one's weights: nothing random, nothing added
    assert sum(p.numel() for p in asr.parameters()) == params_before


def test_local_attention_really_changes_what_a_long_input_sees(make_engine, tiny, speech):
    engine = make_engine(ASR_MODEL=str(tiny["tdt_nobias"]), LONG_AUDIO_S=str(LONG_AUDIO_S))
    long = speech[: 40 * SR]  # 500 encoder frames: more than the 256-frame window
    full = encoder_output(engine._asr, long)
    engine._attention.use(local=True)
    local = encoder_output(engine._asr, long)
    engine._attention.use(local=False)
    assert np.abs(full - local).max() > 1e-3
    assert np.abs(encoder_output(engine._asr, long) - full).max() <= 1e-5


def test_nemos_own_switch_still_damages_a_model_without_biases(make_engine, tiny, speech):
    """Why nemo_attention.py exists: if this starts failing, NeMo fixed its switch and
    the engine could go back to plain change_attention_model."""
    engine = make_engine(ASR_MODEL=str(tiny["tdt_nobias"]))
    asr, short = engine._asr, speech[: 5 * SR]
    before = encoder_output(asr, short)
    asr.change_attention_model("rel_pos_local_attn", [256, 256])
    asr.change_attention_model("rel_pos", [-1, -1])
    assert any(m.linear_q.bias is not None for m in (l.self_attn for l in asr.encoder.layers))
    assert np.abs(encoder_output(asr, short) - before).max() > 1e-3

"""Tiny random-weight NeMo models, built from configs and saved as `.nemo` files.

No pretrained weights can be fetched here, so the real-NeMo tier builds the same model
classes the Spark runs (the configs follow NeMo's own example YAMLs and unit tests),
only small: a 2-layer FastConformer with a TDT decoder/joint and a 64-piece
SentencePiece BPE, Sortformer (offline and streaming), and a TitaNet-style
EncDecSpeakerLabelModel with a 192-d embedding. What they "hear" is random; what they
prove is that the engine drives the real classes, their real outputs and their real
loading paths.

    python tests/real_nemo/tiny_models.py OUT_DIR    # writes OUT_DIR/*.nemo and an HF cache
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

# Seeds, per model: with seed 2 the random TDT models emit several words on speech (most
# seeds give one endless word), so word and segment parsing is exercised.
SEEDS = {"tdt_bias": 2, "tdt_nobias": 2}
SEED = 1234
SORTFORMER_NAMES = {"offline": "nvidia/diar_sortformer_4spk-v1",
                    "streaming": "nvidia/diar_streaming_sortformer_4spk-v2.1"}
ASR_NAME = "nvidia/parakeet-tdt-0.6b-v3"
EMBEDDING_NAME = "nvidia/speakerverification_en_titanet_large"
# Sentences with enough distinct letters for a 64-piece BPE vocabulary, and the end
# punctuation Parakeet writes (segments are cut there).
CORPUS = ("The quick brown fox jumps over the lazy dog. Seven wizards quietly judge boxing "
          "matches? Every speaker reviews the project plan today!").split()


def preprocessor(features: int, normalize: str = "per_feature") -> dict[str, Any]:
    return {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000, "normalize": normalize, "window_size": 0.025,
            "window_stride": 0.01, "window": "hann", "features": features, "n_fft": 512,
            "frame_splicing": 1, "dither": 0.0, "pad_to": 0}


def fast_conformer(features: int, d_model: int, use_bias: bool = True,
                   layers: int = 2) -> dict[str, Any]:
    """Parakeet's encoder shape (dw_striding x8, rel_pos, full context), scaled down."""
    return {"_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": features, "feat_out": -1, "n_layers": layers, "d_model": d_model,
            "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": 32, "causal_downsampling": False,
            "ff_expansion_factor": 2, "self_attention_model": "rel_pos", "n_heads": 2,
            "att_context_size": [-1, -1], "att_context_style": "regular",
            "xscaling": True, "untie_biases": True, "pos_emb_max_len": 5000,
            "conv_kernel_size": 9, "conv_norm_type": "batch_norm", "use_bias": use_bias,
            "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0,
            "dropout_att": 0.0}


def tokenizer_dir(folder: Path) -> Path:
    """A 64-piece SentencePiece BPE made with NeMo's own create_spt_model."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "corpus.txt"
    text.write_text("\n".join(" ".join(CORPUS[i:] + CORPUS[:i]) for i in range(len(CORPUS))))
    create_spt_model(str(text), vocab_size=64, sample_size=-1, do_lower_case=False,
                     output_dir=str(folder), tokenizer_type="bpe")
    return folder


def tdt_config(tokenizer: Path, use_bias: bool) -> dict[str, Any]:
    durations = [0, 1, 2, 3, 4]
    return {
        "sample_rate": 16000,
        "model_defaults": {"enc_hidden": 64, "pred_hidden": 32, "joint_hidden": 32},
        "tokenizer": {"dir": str(tokenizer), "type": "bpe"},
        "preprocessor": preprocessor(80),
        "encoder": fast_conformer(80, 64, use_bias=use_bias),
        "decoder": {"_target_": "nemo.collections.asr.modules.RNNTDecoder",
                    "normalization_mode": None, "random_state_sampling": False,
                    "blank_as_pad": True,
                    "prednet": {"pred_hidden": 32, "pred_rnn_layers": 1, "dropout": 0.0}},
        "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint",
                  "log_softmax": None, "preserve_memory": False, "fuse_loss_wer": False,
                  "jointnet": {"joint_hidden": 32, "activation": "relu", "dropout": 0.0},
                  "num_extra_outputs": len(durations)},
        "decoding": {"strategy": "greedy", "model_type": "tdt", "durations": durations,
                     "greedy": {"max_symbols": 10}},
        "loss": {"loss_name": "tdt",
                 "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0,
                                "durations": durations, "sigma": 0.05, "omega": 0.1}},
    }


def build_tdt(work: Path, use_bias: bool) -> Any:
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(tdt_config(tokenizer_dir(work / "tokenizer"), use_bias))
    return EncDecRNNTBPEModel(cfg=cfg)


def sortformer_config(streaming: bool) -> dict[str, Any]:
    modules = {"_target_": "nemo.collections.asr.modules.sortformer_modules.SortformerModules",
               "num_spks": 4, "dropout_rate": 0.0, "fc_d_model": 64, "tf_d_model": 32}
    if streaming:  # the v2 YAML's streaming values
        modules.update(spkcache_len=188, fifo_len=0, chunk_len=188,
                       spkcache_update_period=188, chunk_left_context=1,
                       chunk_right_context=1, spkcache_sil_frames_per_spk=3,
                       scores_add_rnd=0, pred_score_threshold=0.25, max_index=99999,
                       scores_boost_latest=0.05, sil_threshold=0.2, strong_boost_rate=0.75,
                       weak_boost_rate=1.5, min_pos_scores_rate=0.5, causal_attn_rate=0.5,
                       causal_attn_rc=7)
    return {
        "sample_rate": 16000, "pil_weight": 0.5, "ats_weight": 0.5, "max_num_of_spks": 4,
        "streaming_mode": streaming,
        "model_defaults": {"fc_d_model": 64, "tf_d_model": 32},
        "preprocessor": preprocessor(128, normalize="NA"),
        "sortformer_modules": modules,
        "encoder": fast_conformer(128, 64, layers=1),
        "transformer_encoder": {
            "_target_": "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            "num_layers": 1, "hidden_size": 32, "inner_size": 64, "num_attention_heads": 2,
            "attn_score_dropout": 0.0, "attn_layer_dropout": 0.0, "ffn_dropout": 0.0,
            "hidden_act": "relu", "pre_ln": False, "pre_ln_final_layer_norm": True},
        "loss": {"_target_": "nemo.collections.asr.losses.bce_loss.BCELoss",
                 "weight": None, "reduction": "mean"},
    }


def build_sortformer(streaming: bool) -> Any:
    from nemo.collections.asr.models import SortformerEncLabelModel
    from omegaconf import OmegaConf

    return SortformerEncLabelModel(cfg=OmegaConf.create(sortformer_config(streaming)))


def titanet_config() -> dict[str, Any]:
    def block(filters: int, kernel: int, residual: bool) -> dict[str, Any]:
        return {"filters": filters, "repeat": 1, "kernel": [kernel], "stride": [1],
                "dilation": [1], "dropout": 0.0, "residual": residual, "separable": True,
                "se": True, "se_context_size": -1}

    return {
        "sample_rate": 16000,
        "preprocessor": preprocessor(80),
        "encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder",
                    "feat_in": 80, "activation": "relu", "conv_mask": True,
                    "jasper": [block(64, 3, False), block(64, 7, True), block(256, 1, False)]},
        "decoder": {"_target_": "nemo.collections.asr.modules.SpeakerDecoder",
                    "feat_in": 256, "num_classes": 16, "pool_mode": "attention",
                    "emb_sizes": 192},
        "loss": {"_target_": "nemo.collections.asr.losses.angularloss.AngularSoftmaxLoss",
                 "scale": 30, "margin": 0.2},
    }


def build_titanet() -> Any:
    from nemo.collections.asr.models import EncDecSpeakerLabelModel
    from omegaconf import OmegaConf

    return EncDecSpeakerLabelModel(cfg=OmegaConf.create(titanet_config()))


def build_all(out: Path) -> dict[str, Path]:
    """Every tiny model as OUT/<key>.nemo; returns key -> path."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    builders = {
        "tdt_bias": lambda: build_tdt(out / "work-bias", use_bias=True),
        "tdt_nobias": lambda: build_tdt(out / "work-nobias", use_bias=False),
        "sortformer": lambda: build_sortformer(streaming=False),
        "sortformer_streaming": lambda: build_sortformer(streaming=True),
        "titanet": build_titanet,
    }
    paths = {}
    for key, build in builders.items():
        torch.manual_seed(SEEDS.get(key, SEED))
        path = out / f"{key}.nemo"
        build().save_to(str(path))
        paths[key] = path
    return paths


def hub_cache(root: Path, files: dict[str, Path]) -> Path:
    """An HF hub cache holding `files` (repo id -> .nemo) as from_pretrained lays it
    out: models--org--name/refs/main -> snapshots/<hash>/<name>.nemo."""
    for repo, source in files.items():
        org, name = repo.split("/")
        folder = root / f"models--{org}--{name}"
        commit = hashlib.sha1(repo.encode()).hexdigest()
        snapshot = folder / "snapshots" / commit
        snapshot.mkdir(parents=True, exist_ok=True)
        target = snapshot / f"{name}.nemo"
        if not target.exists():
            target.symlink_to(source)
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(commit)
    return root


if __name__ == "__main__":
    built = build_all(Path(sys.argv[1]))
    print("\n".join(f"{k}: {v} ({v.stat().st_size} bytes)" for k, v in built.items()))

"""Each embedding model's cosine scale: when a voice is named, suggested, or taken
for the same voice across chunks.

A print of one model never compares with a print of another, and each model's
scores sit on a scale of their own, so each model has its own figures. How each
was chosen (and what was not measured) is in the README's "Known speakers" section;
the benches that print them are bench/real_speaker_calibration.py (people) and
bench/real_diarization.py (stitching, on real conversations).

An embedding model known to none gets no names unless SPEAKER_MATCH_THRESHOLD says
which threshold to use (its suggestion band is then SUGGEST_BAND wide).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class VoiceScale:
    match: float  # a person's best-sample cosine at or above this names the speaker
    suggest: float  # at or above this (and under `match`): a suggestion to confirm
    same_voice: float  # stitching: a chunk's speaker is a returning global speaker
    different_voice: float  # stitching: under this, co-activity cannot make them one
    split_voice: float  # stitching: a second label of a chunk is this global speaker
    measured: bool  # calibrated on real people's recordings here, or taken from docs


# The CPU engine's default prints: 3D-Speaker's CAM++, run with onnxruntime.
CAMPP_MODEL = "3D-Speaker CAM++ (onnx)"
CAMPP = VoiceScale(match=0.6, suggest=0.5, same_voice=0.6, different_voice=0.25,
                   split_voice=0.75, measured=True)
# The CPU engine's former prints (resemblyzer's GE2E weights in numpy), kept as
# CPU_SPEAKER_MODEL=ge2e. Match: measured on real people like CAM++ (no stranger named
# from 0.85 up, 5 of 80 at 0.80; half A's highest impostor pair 0.893), with a margin.
# Stitching keeps its figures from before; a split is never merged (split_voice over
# 1): different voices score high on GE2E's scale (real people up to 0.89, espeak variants 0.95-0.97 against one voice's own
# 0.94-0.99 across chunks of one recording).
GE2E_MODEL = "resemblyzer GE2E (numpy)"
GE2E = VoiceScale(match=0.88, suggest=0.82, same_voice=0.75, different_voice=0.4,
                  split_voice=1.01, measured=True)
# TitaNet (the Spark's default EMBEDDING_MODEL): the operating point of NeMo's own
# EncDecSpeakerLabelModel.verify_speakers ((cos + 1) / 2 against 0.7). Not measured
# here: no pretrained TitaNet weights load on these machines. Stitching keeps the
# figures it had before per-model scales (0.75 / 0.4), also unmeasured for TitaNet.
TITANET = VoiceScale(match=0.4, suggest=0.3, same_voice=0.75, different_voice=0.4,
                     split_voice=0.9, measured=False)
SUGGEST_BAND = 0.1  # under an overridden threshold

MIN_MATCH_S = 5.0  # a detected speaker with less speech keeps their label
MIN_ENROLL_S = 8.0  # an enrollment sample needs this much of one voice


def scale_for(model: str, override: float | None = None) -> VoiceScale | None:
    """The figures for prints of `model`; None when it is unknown and not overridden."""
    scale = _known(model)
    if override is None:
        return scale
    if scale is None:
        return VoiceScale(override, override - SUGGEST_BAND, 0.75, 0.4, 0.9, measured=False)
    return replace(scale, match=override, suggest=override - (scale.match - scale.suggest))


def _known(model: str) -> VoiceScale | None:
    if model == CAMPP_MODEL:
        return CAMPP
    if model == GE2E_MODEL:
        return GE2E
    if "titanet" in model.lower():
        return TITANET
    return None

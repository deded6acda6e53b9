"""The cosine above which a detected voice is taken for an enrolled one, per model.

A print of one model never compares with a print of another, and each model's
scores sit on their own scale, so each has its own threshold:

- The CPU engine's GE2E prints (resemblyzer weights, run in numpy): calibrated here
  on espeak-ng voices by `bench/speaker_calibration.py` (figures in the README).
  They are synthetic voices: on real speech the right value may differ.
- TitaNet (the Spark's default EMBEDDING_MODEL): cosine 0.4, the operating point of
  NeMo's own `EncDecSpeakerLabelModel.verify_speakers` (it compares (cos + 1) / 2
  with 0.7). Not measured here: no pretrained TitaNet weights can be loaded on these
  machines, and none was lent a GPU with them.

An embedding model known to neither gets no names unless SPEAKER_MATCH_THRESHOLD
says which threshold to use.
"""

from __future__ import annotations

GE2E_MODEL = "resemblyzer GE2E (numpy)"
GE2E_THRESHOLD = 0.975
TITANET_THRESHOLD = 0.4  # = NeMo's 0.7 on its (cos + 1) / 2 scale

MIN_MATCH_S = 5.0  # a detected speaker with less speech keeps their label
MIN_ENROLL_S = 8.0  # an enrollment sample needs this much of one voice


def threshold_for(model: str, override: float | None = None) -> float | None:
    """The threshold for prints of `model`; None when it is unknown (no matching)."""
    if override is not None:
        return override
    if model == GE2E_MODEL:
        return GE2E_THRESHOLD
    if "titanet" in model.lower():
        return TITANET_THRESHOLD
    return None

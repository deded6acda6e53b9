"""nemo.collections.asr stand-in (the real one also exposes `models` here)."""

from nemo.collections.asr import models  # noqa: F401

"""nemo.collections.asr.parts stand-in."""

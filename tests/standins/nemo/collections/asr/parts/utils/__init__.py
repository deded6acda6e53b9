"""nemo.collections.asr.parts.utils stand-in."""

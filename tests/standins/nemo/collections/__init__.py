"""nemo.collections stand-in."""

"""Choosing the engine: ENGINE=cpu, nemo, or auto (nemo where NeMo is installed)."""

from __future__ import annotations

import importlib.util
import os

from engine_base import Engine


def make_engine(choice: str | None = None) -> Engine:
    name = (choice or os.environ.get("ENGINE", "auto")).strip().lower()
    if name == "auto":
        name = "nemo" if importlib.util.find_spec("nemo") is not None else "cpu"
    if name == "cpu":
        from engine_cpu import CpuEngine

        return CpuEngine()
    if name == "nemo":
        from engine_nemo import NemoEngine

        return NemoEngine()
    raise ValueError(f"ENGINE={name!r} is not an engine: use cpu, nemo or auto")

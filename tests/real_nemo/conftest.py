"""The real-NeMo tier: image/parakeet_patches/engine_nemo.py on nemo-toolkit 3.0.0.

Runs in its own virtual environment (`scripts/setup nemo`, then
`.venv-nemo/bin/python -m pytest tests/real_nemo`; scripts/test does both). Models are tiny
random-weight ones built from configs (tiny_models.py) and loaded through the engine's
own paths: by hub name from an offline Hugging Face cache laid out under the real
model names, and from `.nemo` files. Nothing here needs a GPU or the network.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# huggingface_hub reads these once, at import: set them before anything imports NeMo.
HUB = Path(tempfile.mkdtemp(prefix="nemo-tier-hub-"))
os.environ["HF_HUB_CACHE"] = str(HUB)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

PATCHES = Path(__file__).resolve().parents[2] / "image" / "parakeet_patches"
sys.path.insert(0, str(PATCHES))

import tiny_models  # noqa: E402
from testaudio.generate import Conversation, make_conversation  # noqa: E402

ENV = ("ASR_MODEL", "DIAR_MODEL", "EMBEDDING_MODEL", "LONG_AUDIO_S")


def pytest_sessionfinish() -> None:
    shutil.rmtree(HUB, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Every tiny model as a .nemo file, and the hub cache holding them by real names."""
    paths = tiny_models.build_all(tmp_path_factory.mktemp("tiny-models"))
    tiny_models.hub_cache(HUB, {
        tiny_models.ASR_NAME: paths["tdt_nobias"],  # Parakeet TDT 0.6B: use_bias false
        tiny_models.SORTFORMER_NAMES["offline"]: paths["sortformer"],
        tiny_models.SORTFORMER_NAMES["streaming"]: paths["sortformer_streaming"],
        tiny_models.EMBEDDING_NAME: paths["titanet"],
    })
    return paths


@pytest.fixture
def make_engine(tiny, monkeypatch) -> Callable[..., Any]:
    """make_engine(ASR_MODEL=..., ...) -> a loaded NemoEngine; defaults: the hub names."""
    def make(**env: str) -> Any:
        for name in ENV:
            monkeypatch.delenv(name, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        import engine_nemo

        engine = engine_nemo.NemoEngine()
        engine.load()
        return engine

    return make


@pytest.fixture(scope="module")
def engine(tiny) -> Any:
    """One engine on the default hub names, shared by a module's read-only tests."""
    import engine_nemo

    saved = {k: os.environ.pop(k) for k in ENV if k in os.environ}
    try:
        eng = engine_nemo.NemoEngine()
        eng.load()
        yield eng
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="session")
def conversation(tmp_path_factory) -> Conversation:
    """45 s, 3 speakers (espeak-ng, seeded): real speech for the random models to hear."""
    return make_conversation(tmp_path_factory.mktemp("conversation"), speakers=3,
                             seconds=45, seed=11)


@pytest.fixture(scope="session")
def speech(conversation) -> Any:
    """The conversation as the engine sees it: 16 kHz mono float32."""
    from audio_io import decode

    return decode(conversation.wav)


@pytest.fixture
def temp_dir(tmp_path, monkeypatch) -> Iterator[Path]:
    """tempfile's folder for one test, to see what the engine leaves behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder

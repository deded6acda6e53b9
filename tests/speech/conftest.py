"""The real speech server with the CPU engine on real speech, run as the image runs it.

The NeMo engine's copy of these tests runs on the real NeMo toolkit in tests/real_nemo
(its own virtual environment: scripts/setup nemo).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from speech_server import SpeechServer, start
from testaudio.generate import Conversation, make_conversation


@pytest.fixture(scope="session")
def conversation(tmp_path_factory) -> Conversation:
    """45 s, 3 speakers, with ground truth (made with espeak-ng, seeded)."""
    return make_conversation(tmp_path_factory.mktemp("conversation"), speakers=3,
                             seconds=45, seed=11)


@pytest.fixture(scope="session")
def cpu_server(tmp_path_factory) -> Iterator[SpeechServer]:
    yield from start("cpu", tmp_path_factory.mktemp("cpu-server"), {})


@pytest.fixture(scope="session")
def server(cpu_server) -> SpeechServer:
    return cpu_server

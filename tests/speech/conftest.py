"""The real speech server with the CPU engine on real speech, run as the image runs it.

The NeMo engine's copy of these tests runs on the real NeMo toolkit in tests/real_nemo
(its own virtual environment: scripts/setup nemo).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from speech_server import SpeechServer, start
from testaudio import real
from testaudio.generate import Conversation, make_conversation


@pytest.fixture(scope="session")
def conversation(tmp_path_factory) -> Conversation:
    """45 s, 3 speakers, with ground truth (made with espeak-ng, seeded)."""
    return make_conversation(tmp_path_factory.mktemp("conversation"), speakers=3,
                             seconds=45, seed=11)


@pytest.fixture(scope="session")
def real_conversation(tmp_path_factory):
    """About 40 s of 3 real people from different recordings (tests/data/real):
    (wav, reference turns). For the default engine (CAM++), which models real voices."""
    folder = tmp_path_factory.mktemp("real-conversation")
    _, wav, turns = next(real.assembled(real.recordings(), 1, folder))
    return wav, turns


@pytest.fixture(scope="session")
def cpu_server(tmp_path_factory) -> Iterator[SpeechServer]:
    """The CPU engine with GE2E prints: the speech here is espeak-ng's, and to CAM++ (the
    default, a model of real voices) two male espeak variants are one person (cosine
    0.86). The default engine on real people: test_real_speakers.py."""
    yield from start("cpu", tmp_path_factory.mktemp("cpu-server"), {"CPU_SPEAKER_MODEL": "ge2e"})


@pytest.fixture(scope="session")
def server(cpu_server) -> SpeechServer:
    return cpu_server

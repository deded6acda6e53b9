"""The real speech server, run as the issue says: `uvicorn main:app --app-dir ...`.

`cpu` is the CPU engine on real speech; `nemo` is the NeMo engine with the stand-in
`nemo` package from tests/standins (no GPU or NeMo weights exist here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import wait_for
from sim.spark2 import free_ports
from testaudio.generate import Conversation, make_conversation

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "image" / "parakeet_patches"
STANDINS = REPO / "tests" / "standins"


@dataclass
class SpeechServer:
    engine: str
    url: str
    log: Path


def _start(engine: str, tmp: Path, env_extra: dict[str, str]) -> Iterator[SpeechServer]:
    port = free_ports(1)[0]
    env = {**os.environ, "ENGINE": engine, **env_extra}
    if engine == "nemo":
        env["PYTHONPATH"] = os.pathsep.join([str(STANDINS), env.get("PYTHONPATH", "")])
    log = tmp / f"speech-{engine}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(PATCHES),
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    server = SpeechServer(engine, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(lambda: _status(server.url) in ("ok", "error") or proc.poll() is not None,
                 timeout=120, what=f"{engine} engine to load")
        assert _status(server.url) == "ok", log.read_text()[-3000:]
        yield server
    finally:
        proc.terminate()
        proc.wait(15)


def _status(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return json.load(response)["status"]
    except OSError:
        return None


@pytest.fixture(scope="session")
def conversation(tmp_path_factory) -> Conversation:
    """45 s, 3 speakers, with ground truth (made with espeak-ng, seeded)."""
    return make_conversation(tmp_path_factory.mktemp("conversation"), speakers=3,
                             seconds=45, seed=11)


@pytest.fixture(scope="session")
def cpu_server(tmp_path_factory) -> Iterator[SpeechServer]:
    yield from _start("cpu", tmp_path_factory.mktemp("cpu-server"), {})


@pytest.fixture(scope="session")
def nemo_server(tmp_path_factory, conversation) -> Iterator[SpeechServer]:
    """The NeMo engine over stand-in models that "hear" the conversation's ground truth."""
    tmp = tmp_path_factory.mktemp("nemo-server")
    script = tmp / "standin.json"
    script.write_text(json.dumps(standin_script(conversation)))
    yield from _start("nemo", tmp, {"NEMO_STANDIN_SCRIPT": str(script)})


def standin_script(conv: Conversation) -> dict:
    """Words spread over each line (80 ms encoder frames) and Sortformer-like activity."""
    frame = 0.08
    heard, frames = [], int(conv.duration / frame) + 1
    probs = [[0.02] * 4 for _ in range(frames)]
    for line in conv.lines:
        words = line.text.split()
        step = (line.end - line.start) / len(words)
        for i, word in enumerate(words):
            start = line.start + i * step
            heard.append([word, round(start / frame), round((start + step * 0.9) / frame)])
        speaker = int(line.speaker.removeprefix("spk"))
        for f in range(int(line.start / frame), min(frames, int(line.end / frame))):
            probs[f][speaker] = 0.93
    return {"heard": heard, "diar_probs": probs}


@pytest.fixture(scope="session", params=["cpu", "nemo"])
def server(request) -> SpeechServer:
    return request.getfixturevalue(f"{request.param}_server")

"""The real speech server as a process, run as the image runs it:
`python -m uvicorn main:app --app-dir image/parakeet_patches` (importable as
`speech_server`: tests/speech for the CPU engine, tests/real_nemo for the NeMo engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import wait_for
from sim.spark2 import free_ports

REPO = Path(__file__).resolve().parents[1]
PATCHES = REPO / "image" / "parakeet_patches"


@dataclass
class SpeechServer:
    engine: str
    url: str
    log: Path


def start(engine: str, tmp: Path, env_extra: dict[str, str],
          want: str = "ok") -> Iterator[SpeechServer]:
    """Serve until the generator is closed; fails unless /health reaches `want`."""
    port = free_ports(1)[0]
    env = {**os.environ, "ENGINE": engine, **env_extra}
    log = tmp / f"speech-{engine}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(PATCHES),
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    server = SpeechServer(engine, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(lambda: status(server.url) in ("ok", "error") or proc.poll() is not None,
                 timeout=180, what=f"{engine} engine to load")
        assert status(server.url) == want, log.read_text()[-3000:]
        yield server
    finally:
        proc.terminate()
        proc.wait(15)


def status(url: str) -> str | None:
    return health(url).get("status")


def health(url: str) -> dict:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return json.load(response)
    except OSError:
        return {}

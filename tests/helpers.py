"""Helpers shared by the tests (importable as `helpers`: see pythonpath in pyproject)."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi.testclient import TestClient

from app.config import Settings
from app.server import create_app
from app.speech_server.context import ROOT, load_context
from sim.spark2 import SimSpark2

T = TypeVar("T")



def wait_for(probe: Callable[[], T], timeout: float = 20, what: str = "condition",
             interval: float = 0.1) -> T:
    """Poll until probe() returns something truthy; fail with what was last seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")


def sim_settings(sim: SimSpark2, **overrides: Any) -> Settings:
    """Settings pointing at the simulation, with fast polls for tests."""
    values: dict[str, Any] = {k.lower(): v for k, v in sim.env().items()
                              if k != "SIM_SPARK2_DIR"}
    values.update(poll_interval_s=0.5, health_timeout_s=2, ssh_connect_timeout_s=2,
                  deep_check_timeout_s=3, deep_check_interval_s=3600, stop_grace_s=2,
                  startup_grace_s=30, parakeet_memory_limit="1g",
                  data_dir=Path(tempfile.mkdtemp(prefix="control-", dir=sim.state.root)))
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def authed(settings: Settings) -> TestClient:
    """A test client of a new app that sends the app's bearer token (as API clients do)."""
    app = create_app(settings)
    token = app.state.auth.token
    return TestClient(app, headers={"Authorization": f"Bearer {token}"} if token else {})


@contextmanager
def control(settings: Settings) -> Iterator[TestClient]:
    """spark-control, running (lifespan, pollers and all) against the settings."""
    with authed(settings) as client:
        yield client


def service(client: TestClient, name: str) -> dict[str, Any]:
    response = client.get(f"/api/services/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def inspect(sim: SimSpark2, container: str, template: str) -> str:
    return sim.docker("inspect", "--format", template, container).stdout.decode().strip()


def metric(client: TestClient, sample: str, **labels: str) -> float:
    """One sample's value from the app's /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The ASGI app on a free loopback port, in a thread: its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def run_job(client: TestClient, wav: Path) -> str:
    """Submit the file as an audio job, follow its events to the end: its id (done)."""
    with wav.open("rb") as f:
        job = client.post("/api/audio/jobs", files={"file": (wav.name, f, "audio/wav")})
    assert job.status_code == 202, job.text
    with client.stream("GET", f"/api/audio/jobs/{job.json()['id']}/events") as stream:
        seen = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
    assert seen[-1]["status"] == "done", seen[-1]
    return job.json()["id"]


def install_settings(host: SimSpark2, spare: int, context: Path | None = None,
                     **overrides: Any) -> Settings:
    """Settings for the install manager on a simulated Spark (SimSpark2.install_env),
    building `context` (default: this checkout's)."""
    values: dict[str, Any] = {k.lower(): v for k, v in host.install_env(spare).items()}
    values.update(speech_server_health_timeout_s=60, speech_server_cleanup_retry_s=60,
                  speech_server_context_dir=context)
    values.update(overrides)
    return sim_settings(host, **values)


def copy_context(folder: Path) -> Path:
    """This checkout's build context in a folder of its own, to change it."""
    for path, content in load_context(ROOT).files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    return folder

"""Fixtures for the simulated Spark 2: a real dockerd and sshd on loopback.

The daemons start once per session (about 3 s); each test that asks for `sim`
gets freshly created containers, so no test sees another's memory cap, stopped
container or restarts.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator

import pytest

from sim.spark2 import GB10_CSV, SimSpark2, _alive, _health_ok

# TestClient sends "Host: testserver"; every other name the tests use is loopback.
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

# tests/real_nemo needs the real NeMo toolkit: it runs in its own virtual environment
# (.venv-nemo/bin/python -m pytest tests/real_nemo; scripts/test runs both).
collect_ignore = [] if importlib.util.find_spec("nemo") else ["real_nemo"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the
    main thread until the session ends, and asyncio.run() refuses to start under it."""
    items.sort(key=lambda item: "browser" in item.path.parts)  # stable: order kept


@pytest.fixture(scope="session")
def spark2() -> Iterator[SimSpark2]:
    missing = [tool for tool in ("dockerd", "docker", "sshd", "ssh-keygen")
               if not shutil.which(tool) and not shutil.which(tool, path="/usr/sbin")]
    if missing:
        pytest.fail(f"the simulated Spark 2 needs {', '.join(missing)}: run .ci/run "
                    "(apt-get install docker.io openssh-server)")
    sim = SimSpark2.up()
    try:
        yield sim
    finally:
        sim.down()


@pytest.fixture(scope="session")
def bare_spark() -> Iterator[SimSpark2]:
    """A second simulated Spark that starts with no parakeet-asr (magpie-tts only) and a
    Debian base image for the speech server's Dockerfile: the install manager's tests
    build on it (tests/sim/test_install_manager.py, then the browser's), sharing its
    build cache."""
    sim = SimSpark2.up(speech=False)
    try:
        sim.import_base()
        yield sim
    finally:
        sim.down()


@pytest.fixture
def sim(spark2: SimSpark2) -> SimSpark2:
    """The simulation with sshd up and both containers freshly created and healthy."""
    return _fresh(spark2)


def _fresh(host: SimSpark2) -> SimSpark2:
    """sshd up, the containers created anew and healthy, the GPU stand-in reset."""
    pid = host.state.pids.get("sshd")
    if not pid or not _alive(pid):
        host.start_sshd()
    host.reset_containers()
    host.set_gpu(GB10_CSV)
    return host


@pytest.fixture(scope="session")
def spark1_host() -> Iterator[SimSpark2]:
    """The pool's second simulated host (its own dockerd, sshd and speech server; no
    TTS): tests/sim/test_pool.py and the browser's hosts panel use it."""
    host = SimSpark2.up(tts=False)
    try:
        yield host
    finally:
        host.down()


@pytest.fixture
def spark1(spark1_host: SimSpark2) -> SimSpark2:
    """The second host with sshd up and a fresh, healthy speech server."""
    return _fresh(spark1_host)


@pytest.fixture
def pair(spark2: SimSpark2, spark1_host: SimSpark2) -> tuple[SimSpark2, SimSpark2]:
    """Both hosts of a pool, each made fresh only when the last test left it changed
    (sshd stopped, a container killed or started with other settings): the pool tests
    change one host at most, and recreating both costs ~8 s a test."""
    return tuple(h if _untouched(h) else _fresh(h)  # type: ignore[return-value]
                 for h in (spark2, spark1_host))


def _untouched(host: SimSpark2) -> bool:
    pid = host.state.pids.get("sshd")
    if not pid or not _alive(pid):
        return False
    env = host.docker("inspect", "--format", "{{json .Config.Env}}", "parakeet-asr",
                      check=False)
    if env.returncode != 0 or b"CPU_SPEAKER_MODEL" in env.stdout:
        return False
    ports = [host.state.parakeet_port] + ([host.state.magpie_port] if host.state.tts else [])
    return all(_health_ok(f"http://127.0.0.1:{port}/health") for port in ports)

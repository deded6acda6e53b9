"""Is a freshly started speech server ready? Its /health says the models are loaded,
and a real tiny transcription answers (loaded models can still fail on a request: a
CUDA or library mismatch shows only then)."""

from __future__ import annotations

import asyncio
import time

import httpx

from ..registry.probes import HealthResult, fetch_health, silence_wav
from ..remote.docker import Docker


class NotReady(RuntimeError):
    """The new server did not become ready; the message says what was seen last."""


def loaded(health: HealthResult) -> bool:
    body = health.body or {}
    return health.ok and body.get("asr_loaded", True) and body.get("diarizer_loaded", True)


async def wait_loaded(http: httpx.AsyncClient, docker: Docker, container: str, url: str,
                      timeout: float, poll_s: float = 1.0) -> HealthResult:
    """Poll /health until the models are loaded; fail early if the container exits."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        health = await fetch_health(http, url, 3.0)
        if loaded(health):
            return health
        last = health.detail
        info = await docker.inspect_many([container])
        if info[container] is None or not info[container].running:  # type: ignore[union-attr]
            raise NotReady(await _exited(docker, container, info[container]))
        await asyncio.sleep(poll_s)
    raise NotReady(f"{url}/health did not report the models loaded within {timeout:g} s "
                   f"(SPEECH_SERVER_HEALTH_TIMEOUT_S); last: {last}")


async def _exited(docker: Docker, container: str, info: object) -> str:
    if info is None:
        return f"the container {container} disappeared"
    logs = await docker.logs(container, tail=12)
    lines = " | ".join(line for line in logs.splitlines() if line.strip())[-800:]
    return (f"the container {container} exited (code {info.exit_code}): "  # type: ignore[attr-defined]
            f"{lines or '(no output)'}")


async def probe(http: httpx.AsyncClient, url: str, timeout: float) -> str:
    """One real transcription of a short clip; its text is not judged, its shape is."""
    started = time.perf_counter()
    files = {"file": ("probe.wav", silence_wav(1.0), "audio/wav")}
    try:
        answer = await http.post(f"{url}/v1/audio/transcriptions", files=files,
                                 data={"response_format": "json"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise NotReady(f"the probe transcription to {url} failed: "
                       f"{type(exc).__name__}: {exc}") from None
    if answer.status_code != 200:
        raise NotReady(f"the probe transcription answered {answer.status_code}: "
                       f"{answer.text[:300]}")
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "text" not in body:
        raise NotReady(f"the probe transcription's answer has no text: {answer.text[:300]}")
    return f"a 1 s transcription answered in {(time.perf_counter() - started):.1f} s"

"""HTTP probes of a speech service: its `/health`, and the deep check.

The deep check is a real tiny request (1 s of silence to the ASR, a short text to
the TTS). Its verdict decides about auto-restarts:
- "ok": the service answered 2xx;
- "failed": 5xx, timeout or refused connection — the service is wedged or down,
  and a restart may help;
- "rejected": 4xx — the service is up but refused this request; a restart would
  not change that, so it is reported and left alone;
- "busy": the service reports model calls in progress and within their time bound
  (its `/health` `work`), so the check is skipped, or it timed out queued behind
  that work: a busy server is not wedged, and is never restarted for it.

A wedge is still caught while the service works: a stopped process does not answer
`/health` at all, and a model call that never returns makes `work.hung` true.
"""

from __future__ import annotations

import io
import time
import wave
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from ..config import ServiceSpec

Verdict = Literal["ok", "failed", "rejected", "busy"]


class HealthResult(BaseModel):
    ok: bool
    status_code: int | None = None
    detail: str = ""
    models: list[str] = []
    body: dict[str, Any] | None = None
    latency_ms: float | None = None


class ServerWork(BaseModel):
    """The `work` of a speech server's /health (parakeet_patches/work.py)."""

    calls: int
    stage: str | None = None
    audio_s: float | None = None
    waiting_s: float = 0.0
    limit_s: float | None = None
    hung: bool = False

    def summary(self) -> str:
        if self.hung:
            return (f"its {self.stage} call on {self.audio_s:g} s of audio has made no "
                    f"progress for {self.waiting_s:g} s (limit {self.limit_s:g} s): hung")
        return (f"{self.calls} model call(s) in progress, the oldest ({self.stage}) for "
                f"{self.waiting_s:g} s of at most {self.limit_s:g} s")


class DeepCheckResult(BaseModel):
    verdict: Verdict
    detail: str
    status_code: int | None = None
    latency_ms: float
    at: float  # unix time


async def fetch_health(client: httpx.AsyncClient, url: str, timeout: float) -> HealthResult:
    started = time.perf_counter()
    try:
        response = await client.get(f"{url}/health", timeout=timeout)
    except httpx.TimeoutException:
        return HealthResult(ok=False, detail=f"no answer from {url}/health within {timeout:g} s")
    except httpx.HTTPError as exc:
        return HealthResult(ok=False, detail=f"cannot reach {url}/health: {_reason(exc)}")
    latency = (time.perf_counter() - started) * 1000
    body = _json_object(response)
    ok = response.status_code == 200 and (body or {}).get("status", "ok") in ("ok", "healthy")
    detail = "healthy" if ok else _unhealthy(response, body)
    return HealthResult(ok=ok, status_code=response.status_code, detail=detail,
                        models=models_from_health(body), body=body, latency_ms=latency)


def models_from_health(body: dict[str, Any] | None) -> list[str]:
    """Model names from a /health body: a `models` dict or list, or `*_model` keys."""
    if not body:
        return []
    models = body.get("models")
    if isinstance(models, dict):
        names = [v for v in models.values() if isinstance(v, str)]
    elif isinstance(models, list):
        names = [m for m in models if isinstance(m, str)]
    else:
        names = [v for k, v in body.items() if k.endswith("_model") and isinstance(v, str)]
    return sorted(set(names))


def server_work(health: HealthResult) -> ServerWork | None:
    """The work a speech server reports, or None when it does not report any."""
    raw = (health.body or {}).get("work")
    try:
        return ServerWork.model_validate(raw) if isinstance(raw, dict) else None
    except ValueError:
        return None


async def deep_check(client: httpx.AsyncClient, spec: ServiceSpec,
                     timeout: float) -> DeepCheckResult:
    started = time.perf_counter()
    if spec.kind == "asr":  # asks first what the server is doing
        early = await _busy_or_hung(client, spec, started, timeout)
        if early is not None:
            return early
    try:
        response = await _send_check(client, spec, timeout)
    except httpx.TimeoutException:
        return await _after_timeout(client, spec, started, timeout)
    except httpx.HTTPError as exc:
        return _result(started, "failed", f"cannot reach {spec.url}: {_reason(exc)}")
    code = response.status_code
    if code < 300:
        return _result(started, "ok", f"answered HTTP {code}", code)
    verdict: Verdict = "failed" if code >= 500 else "rejected"
    return _result(started, verdict, f"HTTP {code}: {response.text[:300]}", code)


async def _busy_or_hung(client: httpx.AsyncClient, spec: ServiceSpec, started: float,
                        timeout: float) -> DeepCheckResult | None:
    health = await fetch_health(client, spec.url, timeout)
    if health.status_code is None:  # no answer at all: stopped, or its loop is stuck
        return _result(started, "failed", health.detail)
    work = server_work(health)
    if work is None or work.calls == 0:
        return None
    verdict: Verdict = "failed" if work.hung else "busy"
    return _result(started, verdict, work.summary() + ("" if work.hung else
                                                       "; deep check deferred"))


async def _after_timeout(client: httpx.AsyncClient, spec: ServiceSpec, started: float,
                         timeout: float) -> DeepCheckResult:
    """The probe waited too long: queued behind work the server reports, or wedged."""
    health = await fetch_health(client, spec.url, timeout)
    work = server_work(health)
    if work is not None and work.calls and not work.hung:
        return _result(started, "busy", f"no answer within {timeout:g} s, queued behind "
                                        f"work: {work.summary()}")
    reason = f"; {work.summary()}" if work is not None and work.hung else " (wedged?)"
    return _result(started, "failed", f"no answer within {timeout:g} s{reason}")


async def _send_check(client: httpx.AsyncClient, spec: ServiceSpec,
                      timeout: float) -> httpx.Response:
    if spec.kind == "asr":
        files = {"file": ("deep-check.wav", silence_wav(1.0), "audio/wav")}
        return await client.post(f"{spec.url}/v1/audio/transcriptions", files=files,
                                 data={"response_format": "json"}, timeout=timeout)
    if spec.kind == "tts":
        return await client.post(f"{spec.url}/v1/audio/speech", timeout=timeout,
                                 json={"input": "Deep check.", "response_format": "wav"})
    return await client.get(f"{spec.url}/health", timeout=timeout)


def silence_wav(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def _result(started: float, verdict: Verdict, detail: str,
            code: int | None = None) -> DeepCheckResult:
    return DeepCheckResult(verdict=verdict, detail=detail, status_code=code,
                           latency_ms=round((time.perf_counter() - started) * 1000, 1),
                           at=time.time())


def _unhealthy(response: httpx.Response, body: dict[str, Any] | None) -> str:
    """The server's own words when it gives them (e.g. its engine failed to load)."""
    error = (body or {}).get("error")
    if isinstance(error, str) and error:
        return f"{(body or {}).get('status', 'unhealthy')}: {error}"
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _reason(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__

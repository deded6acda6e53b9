"""HTTP client of the speech server (parakeet-asr), with faults as RemoteErrors.

5xx -> UpstreamHTTPError (the caller kicks the deep check and answers 503), timeout
-> RemoteTimeout (504), refused or reset -> UpstreamUnavailable (503). A GPU
in-flight cap shared by every request keeps the Spark from being flooded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ..errors import RemoteTimeout, UpstreamHTTPError, UpstreamUnavailable
from ..metrics import GPU_IN_FLIGHT
from .merge import SpeakerTurn, TimedWord

log = logging.getLogger(__name__)
SERVICE = "parakeet-asr"  # named in error messages instead of its internal URL


class SpeechClient:
    def __init__(self, http: httpx.AsyncClient, url: str, timeout: float,
                 in_flight: int = 2) -> None:
        self.http = http
        self.url = url
        self.timeout = timeout
        self.gate = asyncio.Semaphore(in_flight)  # requests on the GPU, for all callers
        self.gate_chunks = asyncio.Semaphore(in_flight)  # chunks cut and in progress
        self.models: dict[str, str] = {}

    async def transcribe(self, wav: Path) -> tuple[list[TimedWord], str]:
        path = "/v1/audio/transcriptions"
        body = await self._post(path, wav, {"response_format": "verbose_json",
                                            "timestamp_granularities[]": "word"})
        with _parsing(self.url + path, body):
            words = [TimedWord(w["word"], float(w["start"]), float(w["end"]))
                     for w in body.get("words", [])]
            return words, str(body.get("language", "en"))

    async def diarize(self, wav: Path, chunk: bool = False
                      ) -> tuple[list[SpeakerTurn], dict[str, list[float]]]:
        path = "/v1/audio/diarize-chunk" if chunk else "/v1/audio/diarize"
        body = await self._post(path, wav, {})
        with _parsing(self.url + path, body):
            self.models.update(body.get("models", {}))
            turns = [SpeakerTurn(float(s["start_s"]), float(s["end_s"]), str(s["speaker"]))
                     for s in body.get("segments", [])]
            return turns, dict(body.get("fingerprints", {}))

    async def verbose(self, wav: Path, language: str | None) -> dict[str, Any]:
        """The speech server's verbose_json with words and segments, as it is."""
        form: dict[str, Any] = {"response_format": "verbose_json",
                                "timestamp_granularities[]": ["word", "segment"]}
        if language:
            form["language"] = language
        return await self._post("/v1/audio/transcriptions", wav, form)

    async def diarize_chunk_raw(self, wav: Path) -> dict[str, Any]:
        return await self._post("/v1/audio/diarize-chunk", wav, {})

    async def _post(self, path: str, wav: Path, form: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.url}{path}"
        async with self.gate:
            try:
                GPU_IN_FLIGHT.inc()
                with wav.open("rb") as f:
                    response = await self.http.post(
                        url, files={"file": (wav.name, f, "audio/wav")}, data=form,
                        timeout=self.timeout)
            except httpx.TimeoutException:
                raise RemoteTimeout(f"the speech server did not answer {path} within "
                                    f"{self.timeout:g} s") from None
            except httpx.TransportError as exc:
                log.warning("cannot reach the speech server at %s: %s", self.url, exc)
                raise UpstreamUnavailable(f"cannot reach the speech server (parakeet-asr): "
                                          f"{exc or type(exc).__name__}") from None
            finally:
                GPU_IN_FLIGHT.dec()
        if response.status_code >= 400:
            raise UpstreamHTTPError(SERVICE, url, response.status_code, response.text)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # a wrong answer, not a wedge: 502 to the caller, no restart
            raise UpstreamHTTPError(SERVICE, url, response.status_code,
                                    f"not a JSON object: {response.text[:200]}")
        return body


@contextmanager
def _parsing(url: str, body: dict[str, Any]) -> Iterator[None]:
    """An answer of the wrong shape is the speech server's fault: a 502, not a 500."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamHTTPError(SERVICE, url, 200, f"unexpected answer ({exc!r}): "
                                          f"{str(body)[:200]}") from None

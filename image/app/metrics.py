"""Prometheus metrics (prometheus-client), served at `/metrics`.

Each metric is counted where the event happens: requests in the ASGI middleware
below, remote errors where a RemoteError is made, restarts where the registry
performs them, OOM kills where the watchdog sees them, GPU requests around the
speech client's in-flight gate, audio jobs when they end.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("spark_control_http_requests_total", "HTTP requests served",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("spark_control_http_request_duration_seconds",
                            "time to the response's first byte", ["method", "route"])
REMOTE_ERRORS = Counter("spark_control_remote_errors_total",
                        "failures talking to Spark 2 or a speech service, by kind", ["kind"])
RESTARTS = Counter("spark_control_service_restarts_total",
                   "service start/stop/restart actions done", ["service", "action", "by"])
OOM_KILLS = Counter("spark_control_service_oom_kills_total",
                    "containers found killed for memory", ["service"])
GPU_IN_FLIGHT = Gauge("spark_control_gpu_requests_in_flight",
                      "speech-server requests in flight (capped by GPU_IN_FLIGHT)")
POOL_OUTSTANDING = Gauge("spark_control_pool_outstanding_seconds",
                         "seconds of audio sent to a speech host and not answered yet",
                         ["host"])
POOL_UNITS = Counter("spark_control_pool_units_total",
                     "units of speech work (recordings, chunks, requests) by host and outcome",
                     ["host", "outcome"])  # served, failed (then moved or given up)
JOBS = Counter("spark_control_audio_jobs_total", "audio jobs ended, by outcome", ["outcome"])
JOB_SECONDS = Histogram("spark_control_audio_job_duration_seconds",
                        "audio job time from submission to its end", ["outcome"],
                        buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200))


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every HTTP request by its route template (never the raw path, which
    would make one series per job id)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                REQUEST_SECONDS.labels(scope["method"], _route(scope)).observe(
                    time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            REQUESTS.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")  # set by the router once a route matched
    if route is None:
        return "unmatched"
    return getattr(route, "path", "") or "static"  # the static files' mount has no path

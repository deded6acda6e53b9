"""The pool's dispatch with two members known by URL, faults injected by respx (the
real two-host runs are tests/sim/test_pool.py): least outstanding work, the per-host
limit, a failed unit moved to the other host, a refusal not moved, errors that name
every host tried, and the embedding-model refusal."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from app.config import HostSpec, Settings
from app.pool.dispatch import SpeechPool
from app.pool.members import build_members
from helpers import authed, wait_for
from speech_audio import wav_bytes

A, B = "http://a.test:8000", "http://b.test:8000"
VERBOSE = {"language": "english", "text": "Hi.", "duration": 40.0,
           "words": [{"word": "Hi.", "start": 5.0, "end": 5.4}],
           "segments": [{"id": 0, "start": 5.0, "end": 5.4, "text": "Hi."}]}


def healthy(url: str, embedding: str = "campplus") -> None:
    respx.get(f"{url}/health").respond(json={"status": "ok", "models": {
        "asr": "whisper", "diarizer": "vad", "embedding": embedding}})


def two_hosts(tmp_path, **extra) -> Settings:
    return Settings(_env_file=None, parakeet_url=A, data_dir=tmp_path, poll_interval_s=0.2,
                    hosts=[HostSpec(name="b", parakeet_url=B)], chunk_threshold_s=40,
                    chunk_s=40, chunk_overlap_s=5, **extra)


def transcribe(client, seconds: float = 70.0):
    return client.post("/v1/audio/transcriptions", data={"response_format": "json"},
                       files={"file": ("a.wav", wav_bytes(seconds, tone=200))})


def active(client) -> bool:
    return all(h["pool"]["state"] == "active" for h in client.get("/api/hosts").json()["hosts"])


async def _slowly(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(0.5)  # both chunks are in flight at once
    return httpx.Response(200, json=VERBOSE)


@respx.mock
def test_chunks_are_spread_and_the_response_says_where(tmp_path):
    healthy(A)
    healthy(B)
    a = respx.post(f"{A}/v1/audio/transcriptions").mock(side_effect=_slowly)
    b = respx.post(f"{B}/v1/audio/transcriptions").mock(side_effect=_slowly)
    with authed(two_hosts(tmp_path)) as client:
        wait_for(lambda: active(client), 5, "both members active")
        response = transcribe(client)
    assert response.status_code == 200, response.text
    assert sorted(response.headers["X-Speech-Hosts"].split(",")) == ["b", "external"]
    assert a.call_count == b.call_count == 1


@respx.mock
def test_a_chunk_that_fails_on_one_host_runs_on_the_other(tmp_path):
    healthy(A)
    healthy(B)
    respx.post(f"{A}/v1/audio/transcriptions").respond(500, text="CUDA error")
    b = respx.post(f"{B}/v1/audio/transcriptions").respond(json=VERBOSE)
    with authed(two_hosts(tmp_path)) as client:
        wait_for(lambda: active(client), 5, "both members active")
        response = transcribe(client)
        view = {h["pool"]["name"]: h["pool"] for h in client.get("/api/hosts").json()["hosts"]}
    assert response.status_code == 200, response.text
    assert response.headers["X-Speech-Hosts"] == "b,b"
    assert b.call_count == 2
    assert view["external"]["failed"] >= 1 and "CUDA error" in view["external"]["last_error"]
    assert view["external"]["state"] == "down"  # out until its /health answers again


@respx.mock
def test_a_unit_failing_everywhere_names_each_host_and_a_refusal_is_not_moved(tmp_path):
    healthy(A)
    healthy(B)
    respx.post(f"{A}/v1/audio/transcriptions").respond(500, text="CUDA error")
    respx.post(f"{B}/v1/audio/transcriptions").mock(side_effect=httpx.ConnectError("refused"))
    with authed(two_hosts(tmp_path)) as client:
        wait_for(lambda: active(client), 5, "both members active")
        failed = transcribe(client, 30.0)
    assert failed.status_code in (503, 502), failed.text
    detail = failed.json()["detail"]
    assert "on external" in detail and "on b" in detail and "every host tried" in detail

    respx.reset()
    healthy(A)
    healthy(B)
    a = respx.post(f"{A}/v1/audio/transcriptions").respond(400, json={"detail": "bad language"})
    b = respx.post(f"{B}/v1/audio/transcriptions").respond(400, json={"detail": "bad language"})
    with authed(two_hosts(tmp_path)) as client:
        wait_for(lambda: active(client), 5, "both members active")
        refused = transcribe(client, 30.0)
    assert refused.status_code == 400 and a.call_count + b.call_count == 1


@respx.mock
def test_another_embedding_model_is_refused_and_gets_no_work(tmp_path):
    healthy(A, "campplus")
    healthy(B, "titanet")
    a = respx.post(f"{A}/v1/audio/transcriptions").respond(json=VERBOSE)
    with authed(two_hosts(tmp_path)) as client:
        b_view = wait_for(lambda: next(
            (h["pool"] for h in client.get("/api/hosts").json()["hosts"]
             if h["pool"]["name"] == "b" and h["pool"]["state"] == "refused"), None), 5,
            "b refused")
        response = transcribe(client)
        drained = client.put("/api/hosts/external/drain", json={"drained": True})
    assert response.headers["X-Speech-Hosts"] == "external,external" and a.call_count == 2
    assert "titanet" in b_view["detail"] and "campplus" in b_view["detail"]
    assert drained.status_code == 409  # b takes no work: external is the only host


def test_least_outstanding_seconds_and_the_per_host_limit(tmp_path):
    asyncio.run(_least_outstanding(tmp_path))


async def _least_outstanding(tmp_path) -> None:
    """Units go to the member with the fewest seconds in flight; past its concurrency a
    unit waits for a slot, never overfilling a host."""
    settings = two_hosts(tmp_path, gpu_in_flight=1)
    async with httpx.AsyncClient() as http:
        pool = SpeechPool(build_members(settings, http, None))
        order: list[str] = []
        release = asyncio.Event()

        async def unit(seconds: float) -> None:
            async with pool.lease(seconds) as member:
                order.append(member.name)
                await release.wait()

        first = asyncio.create_task(unit(100))
        await asyncio.sleep(0)
        second = asyncio.create_task(unit(10))
        third = asyncio.create_task(unit(5))
        await asyncio.sleep(0.05)
        assert order == ["external", "b"]  # third waits: both hosts hold one unit
        assert pool.load["external"].outstanding_s == 100 and pool.load["b"].in_flight == 1
        release.set()
        await asyncio.gather(first, second, third)
        assert len(order) == 3 and all(load.in_flight == 0 for load in pool.load.values())
        for member in pool.members.values():
            await member.close()


def test_a_drain_waits_for_work_in_flight_and_a_pool_of_one_is_never_drained(tmp_path):
    asyncio.run(_drain_waits(tmp_path))


async def _drain_waits(tmp_path) -> None:
    async with httpx.AsyncClient() as http:
        pool = SpeechPool(build_members(two_hosts(tmp_path), http, None))
        lone = SpeechPool(build_members(Settings(_env_file=None, parakeet_url=A,
                                                 data_dir=tmp_path / "one"), http, None))
        async with pool.lease(30, {"b"}) as held:
            assert held.name == "external"
            draining = asyncio.create_task(_drain(pool, "external"))
            await asyncio.sleep(0.1)
            assert not draining.done() and pool.load["external"].drained_by == "for its restart (user)"
        assert await draining
        assert pool.load["external"].drained_by is None  # back in rotation after
        async with lone.drained("external", "for its restart (user)"):
            assert lone.load["external"].drained_by is None
        with pytest.raises(Exception, match="only host"):
            await lone.set_drained("external", True)
        for member in [*pool.members.values(), *lone.members.values()]:
            await member.close()


async def _drain(pool: SpeechPool, name: str) -> bool:
    async with pool.drained(name, "for its restart (user)"):
        return pool.load[name].in_flight == 0


@respx.mock
def test_long_recordings_are_refused_only_while_every_host_swaps(tmp_path):
    from app.host.alerts import HostWarning
    healthy(A)
    healthy(B)
    respx.post(f"{A}/v1/audio/transcriptions").respond(json=VERBOSE)
    respx.post(f"{B}/v1/audio/transcriptions").respond(json=VERBOSE)
    settings = two_hosts(tmp_path, refuse_long_jobs_while_swapping=True)
    with authed(settings) as client:
        wait_for(lambda: active(client), 5, "both members active")
        members = client.app.state.pool.members
        members["external"].host_health.warnings.active["swap"] = HostWarning(
            kind="swap", message="2.00 GiB of swap in use", since=0)
        one_swaps = transcribe(client)
        members["b"].host_health.warnings.active["swap"] = HostWarning(
            kind="swap", message="1.00 GiB of swap in use", since=0)
        both_swap = transcribe(client)
    assert one_swaps.status_code == 200, one_swaps.text
    assert both_swap.status_code == 503 and both_swap.headers["retry-after"] == "120"
    detail = both_swap.json()["detail"]
    assert "every speech host is swapping" in detail and "b: 1.00 GiB" in detail

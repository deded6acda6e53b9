from __future__ import annotations

import asyncio
import logging

from app.registry.budget import RestartBudget
from app.errors import HostUnreachable
from app.poller import Poller


def scripted(answers, calls=None):
    """A fetch that returns (or raises) the next scripted answer."""
    answers = iter(answers)

    async def fetch() -> str:
        if calls is not None:
            calls.append(1)
        await asyncio.sleep(0.01)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return fetch


def test_readers_share_one_fetch_and_changes_are_logged_once(caplog):
    calls: list[int] = []
    fetch = scripted(["up", "up", "up", HostUnreachable("gone"), HostUnreachable("gone"), "up"],
                     calls)

    async def scenario() -> Poller[str]:
        poller = Poller("box", fetch, interval=60)
        await asyncio.gather(*(poller.refresh() for _ in range(5)))  # joined: one fetch
        assert len(calls) == 1
        for _ in range(5):
            await poller.refresh()
        return poller

    caplog.set_level(logging.INFO, logger="app.poller")
    poller = asyncio.run(scenario())
    assert poller.data == "up" and poller.error is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["box: up", "box: error: gone", "box: up"]


def test_error_keeps_last_data_and_sets_error():
    fetch = scripted(["up", HostUnreachable("gone")])

    async def scenario() -> Poller[str]:
        poller = Poller("box", fetch, interval=60)
        await poller.refresh()
        await poller.refresh()
        return poller

    poller = asyncio.run(scenario())
    assert poller.data == "up"
    assert isinstance(poller.error, HostUnreachable)


def after_a_change_mid_poll(fresh: bool) -> str | None:
    """A poll starts while the service is down; the service comes back while that
    poll is in flight; then a reader refreshes. Returns what the reader sees."""
    state = ["down"]

    async def scenario() -> str | None:
        begun = asyncio.Event()

        async def fetch() -> str:
            seen = state[0]
            begun.set()
            await asyncio.sleep(0.05)
            return seen

        poller = Poller("svc", fetch, interval=60)
        in_flight = asyncio.create_task(poller.refresh())
        await begun.wait()
        state[0] = "up"
        await poller.refresh(fresh=fresh)
        await in_flight
        return poller.data

    return asyncio.run(scenario())


def test_a_plain_refresh_joins_the_poll_in_flight():
    assert after_a_change_mid_poll(fresh=False) == "down"


def test_a_fresh_refresh_polls_again_after_a_change():
    # The CI race: a rolled-back service read as unhealthy after its job had ended.
    assert after_a_change_mid_poll(fresh=True) == "up"


def test_a_bug_in_fetch_is_reported_not_fatal():
    async def fetch() -> str:
        raise KeyError("oops")

    async def scenario() -> Poller[str]:
        poller = Poller("box", fetch, interval=0.01)
        poller.start()
        await asyncio.sleep(0.05)
        await poller.stop()
        return poller

    poller = asyncio.run(scenario())
    assert "internal error while polling box" in poller.error.message


def test_restart_budget_is_a_sliding_window():
    now = [0.0]
    budget = RestartBudget(3, 1800, clock=lambda: now[0])
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 1799
    assert not budget.take() and budget.seconds_until_free() == 1
    now[0] = 1800
    assert budget.used() == 0 and budget.take()

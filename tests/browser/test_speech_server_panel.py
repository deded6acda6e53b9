"""The speech-server panel against a simulated Spark with no parakeet-asr: install from
the dashboard with the build log streaming into the job dialog, then an upgrade offered
("Upgrade available" on the services card too) and driven to the switch."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.speech_server.context import DOCKERFILE
from helpers import copy_context, install_settings
from sim.spark2 import free_ports

pytestmark = pytest.mark.sim


def confirm(page) -> None:
    dialog = page.locator("dialog[data-confirm]")
    expect(dialog).to_be_visible()
    dialog.locator('[data-action="confirm"]').click()


def run_job(page, action: str) -> object:
    """Click the panel's button, confirm, and wait for the job dialog to say done."""
    page.locator(f'[data-panel="speech-server"] [data-action="{action}"]').click()
    confirm(page)
    job = page.locator("dialog[data-server-job]")
    expect(job).to_be_visible()
    expect(job).to_have_attribute("data-job-status", "running")
    expect(job.locator('[data-action="cancel-server-job"]')).to_be_visible()
    expect(job).to_have_attribute("data-job-status", "done", timeout=240_000)
    return job


def test_install_then_upgrade_from_the_dashboard(bare_spark, dashboard, artifacts, tmp_path):
    bare_spark.docker("rm", "-f", "parakeet-asr")  # the tests before it installed one
    spare = free_ports(1)[0]
    board = dashboard(install_settings(bare_spark, spare))
    board.open()
    page = board.page
    panel = page.locator('[data-panel="speech-server"]')
    state = panel.locator("[data-server-state]")
    expect(state).to_have_attribute("data-server-state", "missing")
    expect(state).to_have_text("Not installed")
    expect(panel.locator('[data-action="upgrade-server"]')).to_be_hidden()

    job = run_job(page, "install-server")
    steps = job.locator("[data-server-steps] [data-step]")
    expect(steps).to_have_count(7)
    for name in ("context", "build", "start", "health", "probe", "switch", "cleanup"):
        expect(job.locator(f'[data-step="{name}"]')).to_have_attribute("data-step-status", "ok")
    log = job.locator("[data-server-log]")
    expect(log).to_contain_text("Step 1/")
    expect(log).to_contain_text("Successfully tagged")
    assert int(job.locator("[data-log-count]").inner_text()) > 10
    # the log followed its end: scrolled to the bottom
    assert page.evaluate("""() => { const l = document.querySelector("[data-server-log]");
        return l.scrollHeight - l.scrollTop - l.clientHeight < 30; }""")
    expect(job.locator("[data-server-outcome]")).to_contain_text("parakeet-asr installed")
    board.shot(artifacts, "speech-server-installed", widths=("desktop",))
    job.locator('[data-action="close-server-job"]').click()
    expect(state).to_have_attribute("data-server-state", "installed")
    card = page.locator('[data-service="parakeet-asr"]')
    expect(card).to_have_attribute("data-state", "healthy", timeout=30_000)

    # a spark-control with a changed context: the panel and the card offer the upgrade
    context = copy_context(tmp_path / "ctx")
    (context / DOCKERFILE).write_text((context / DOCKERFILE).read_text() + "\n# changed\n")
    board = dashboard(install_settings(bare_spark, spare, context))
    board.open()
    page = board.page
    panel = page.locator('[data-panel="speech-server"]')
    expect(panel.locator("[data-server-state]")).to_have_attribute("data-server-state",
                                                                   "outdated")
    card = page.locator('[data-service="parakeet-asr"]')
    expect(card.locator("[data-badge]")).to_have_text("Upgrade available")
    board.screens(artifacts, "speech-server-upgrade-available")
    job = run_job(page, "upgrade-server")
    expect(job.locator('[data-step="switch"]')).to_have_attribute("data-step-status", "ok")
    expect(job.locator("[data-server-outcome]")).to_contain_text("upgraded to")
    expect(job.locator("[data-server-job-elapsed]")).to_contain_text("took")
    board.shot(artifacts, "speech-server-upgraded", widths=("desktop",), dark=True)
    job.locator('[data-action="close-server-job"]').click()
    expect(panel.locator("[data-server-state]")).to_have_attribute("data-server-state",
                                                                   "installed")
    expect(card.locator("[data-badge]")).to_be_hidden()
    expect(panel.locator('[data-action="rollback-server"]')).to_be_visible()

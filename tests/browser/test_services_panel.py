"""The services cards against the simulated Spark 2: what they show is what docker and
/health say, and the buttons really act on the containers. Also local mode (no Spark),
where spark-control runs the speech server itself."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.config import Settings
from helpers import inspect, sim_settings


def card(page, name: str):
    return page.locator(f'[data-service="{name}"]')


def button(page, name: str, action: str):
    return card(page, name).locator(f'[data-action="{action}"]')


@pytest.mark.sim
def test_cards_show_the_real_states(sim, dashboard):
    sim.docker("stop", "-t", "1", "magpie-tts")
    board = dashboard(sim_settings(sim))
    board.open()
    page = board.page
    asr, tts = card(page, "parakeet-asr"), card(page, "magpie-tts")

    expect(asr).to_have_attribute("data-state", "healthy")
    expect(tts).to_have_attribute("data-state", "stopped")
    expect(asr.locator("[data-pill]")).to_have_text("Healthy")
    expect(tts.locator("[data-pill]")).to_have_text("Stopped")
    expect(page.locator("[data-host]")).to_have_attribute("data-reachable", "true")

    api = {s["name"]: s for s in board.api("/api/services").json()["services"]}
    expect(asr.locator(".where")).to_contain_text(f"127.0.0.1:{sim.state.parakeet_port}")
    expect(asr.locator(".where")).to_contain_text("container parakeet-asr")
    assert api["parakeet-asr"]["models"]
    for model in api["parakeet-asr"]["models"]:
        expect(asr.locator('[data-field="models"]')).to_contain_text(model)
    expect(asr.locator('[data-field="memory"]')).to_contain_text("/ 1.0 GiB")  # the cap
    expect(tts.locator('[data-field="memory"]')).to_contain_text("no cap")
    expect(asr.locator('[data-field="deep_check"]')).to_have_text("not run yet")

    # Buttons only where they make sense.
    expect(button(page, "parakeet-asr", "stop")).to_be_enabled()
    expect(button(page, "parakeet-asr", "restart")).to_be_enabled()
    expect(button(page, "parakeet-asr", "deep-check")).to_be_enabled()
    expect(button(page, "parakeet-asr", "start")).to_be_disabled()
    expect(button(page, "magpie-tts", "stop")).to_be_disabled()
    expect(button(page, "magpie-tts", "deep-check")).to_be_disabled()
    expect(button(page, "magpie-tts", "start")).to_be_enabled()

    # Start needs no confirmation; the card follows the container back to healthy.
    button(page, "magpie-tts", "start").click()
    expect(tts).to_have_attribute("data-state", "healthy", timeout=30_000)
    assert inspect(sim, "magpie-tts", "{{.State.Running}}") == "true"
    expect(button(page, "magpie-tts", "start")).to_be_disabled()

    # A deep check on demand: a real tiny transcription.
    button(page, "parakeet-asr", "deep-check").click()
    expect(asr.locator('[data-field="deep_check"]')).to_have_attribute("data-verdict", "ok")
    expect(asr.locator("[data-message]")).to_contain_text("Deep check OK")


@pytest.mark.sim
def test_stop_through_the_dialog_stops_the_container(sim, dashboard):
    board = dashboard(sim_settings(sim))
    board.open()
    page = board.page
    asr = card(page, "parakeet-asr")
    dialog = page.locator("dialog[data-confirm]")
    expect(asr).to_have_attribute("data-state", "healthy")

    # From the keyboard: Enter opens the dialog, Escape leaves everything as it was.
    button(page, "parakeet-asr", "stop").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Stop parakeet-asr?")
    expect(dialog.locator('[data-action="cancel"]')).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Cancel by click: nothing happens either.
    button(page, "parakeet-asr", "stop").click()
    dialog.locator('[data-action="cancel"]').click()
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(1500)  # a stop would have been sent by now
    assert inspect(sim, "parakeet-asr", "{{.State.Running}}") == "true"
    expect(asr).to_have_attribute("data-state", "healthy")

    button(page, "parakeet-asr", "stop").click()
    dialog.locator('[data-action="confirm"]').click()
    expect(asr).to_have_attribute("data-state", "stopped", timeout=30_000)
    expect(asr.locator("[data-pill]")).to_have_text("Stopped")
    assert inspect(sim, "parakeet-asr", "{{.State.Running}}") == "false"
    expect(asr.locator("[data-message]")).to_contain_text("Stop of parakeet-asr: ok")
    expect(button(page, "parakeet-asr", "start")).to_be_enabled()
    expect(button(page, "parakeet-asr", "stop")).to_be_disabled()
    expect(button(page, "parakeet-asr", "deep-check")).to_be_disabled()
    expect(card(page, "magpie-tts")).to_have_attribute("data-state", "healthy")


@pytest.mark.sim
def test_unreachable_spark_disables_every_action(sim, dashboard):
    board = dashboard(sim_settings(sim))
    board.open()
    page = board.page
    expect(card(page, "parakeet-asr")).to_have_attribute("data-state", "healthy")
    sim.stop_sshd()  # the sim fixture starts it again for the next test

    for name in ("parakeet-asr", "magpie-tts"):
        expect(card(page, name)).to_have_attribute("data-state", "unreachable", timeout=20_000)
        expect(card(page, name).locator("[data-pill]")).to_have_text("Unreachable")
        expect(card(page, name).locator(".state-detail")).to_contain_text("cannot reach SSH")
        for action in ("start", "stop", "restart", "deep-check"):
            expect(button(page, name, action)).to_be_disabled()
    expect(page.locator("[data-host]")).to_have_attribute("data-reachable", "false")
    expect(page.locator("[data-host]")).to_contain_text("unreachable")


def test_local_mode_shows_the_local_server_and_no_patch_actions(dashboard, tmp_path):
    """No Spark configured: spark-control runs the CPU speech server itself."""
    board = dashboard(Settings(_env_file=None, data_dir=tmp_path / "data", poll_interval_s=0.5,
                               stop_grace_s=3))
    board.open()
    page = board.page
    asr = card(page, "parakeet-asr")
    expect(asr).to_have_attribute("data-state", "healthy", timeout=60_000)
    expect(page.locator("[data-host]")).to_have_attribute("data-mode", "local")
    expect(page.locator("[data-host]")).to_contain_text("Local mode")
    expect(asr.locator(".where")).to_contain_text("process local-speech")
    expect(button(page, "parakeet-asr", "restart")).to_be_enabled()

    panel = page.locator('[data-panel="speech-models"]')
    expect(panel.locator("[data-overall]")).to_have_attribute("data-overall", "local")
    expect(panel.locator("[data-overall]")).to_have_text("Local mode")
    expect(panel.locator("[data-models-detail]")).to_contain_text("no Spark is configured")
    expect(panel.locator("table.files")).to_be_hidden()
    expect(panel.locator('[data-action="reapply"]')).to_be_disabled()
    expect(panel.locator('[data-action="restart-models"]')).to_be_disabled()


@pytest.mark.sim
def test_a_speech_server_known_by_url_offers_only_the_deep_check(sim, dashboard, tmp_path):
    """No Spark, PARAKEET_URL at a speech server spark-control does not run (compose's
    "without a Spark" setup): listed and healthy, nothing to start or stop."""
    board = dashboard(Settings(_env_file=None, data_dir=tmp_path / "data", local_speech=False,
                               parakeet_url=sim.env()["PARAKEET_URL"], poll_interval_s=0.5))
    board.open()
    page = board.page
    asr = card(page, "parakeet-asr")
    expect(asr).to_have_attribute("data-state", "healthy", timeout=30_000)
    expect(page.locator("[data-host]")).to_have_attribute("data-mode", "external")
    expect(page.locator("[data-host]")).to_contain_text("No Spark: services reached by URL")
    expect(asr.locator(".where")).to_contain_text("by URL only")
    for action in ("start", "stop", "restart"):
        expect(button(page, "parakeet-asr", action)).to_be_disabled()
    button(page, "parakeet-asr", "deep-check").click()
    check = asr.locator('[data-field="deep_check"]')
    expect(check).to_have_attribute("data-verdict", "ok", timeout=30_000)

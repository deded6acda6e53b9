"""The hosts panel with two simulated hosts: each host's state in words, its load, the
drain toggle (with its confirmation), and tabs that switch the per-host panels below
(services, host, patches) to the chosen host, by mouse and by keyboard. A pool of one
shows no hosts panel at all (the dashboard as it was)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.config import HostSpec
from helpers import sim_settings

pytestmark = pytest.mark.sim


def confirm(page) -> None:
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    dialog.locator('[data-action="confirm"]').click()


def test_two_hosts_show_their_state_load_and_switch_the_panels(sim, spark1, dashboard,
                                                              artifacts):
    settings = sim_settings(sim, hosts=[HostSpec(**spark1.host_entry("spark1"))])
    board = dashboard(settings)
    board.open()
    page = board.page
    panel = page.locator('[data-panel="hosts"]')
    expect(panel).to_be_visible()
    for name in ("spark2", "spark1"):
        row = panel.locator(f'[data-host-row="{name}"]')
        expect(row).to_have_attribute("data-host-state", "active", timeout=20_000)
        expect(row.locator(".pill")).to_have_text("Taking work")
        expect(row.locator(f'[data-host-load="{name}"]')).to_contain_text("0/2 slots")
    expect(panel.locator("[data-pool-summary]")).to_contain_text("2 of 2 taking work")

    # The tabs pick the host of the panels below: spark1 runs no magpie-tts.
    expect(page.locator('[data-service="magpie-tts"]')).to_be_visible()
    panel.locator('[data-host-tab="spark1"]').click()
    expect(panel.locator('[data-host-tab="spark1"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator('[data-service="magpie-tts"]')).to_have_count(0)
    expect(page.locator("#host-title")).to_have_text("Host spark1")
    expect(page.locator('[data-service="parakeet-asr"] .where')).to_contain_text(
        f"127.0.0.1:{spark1.state.parakeet_port}")
    page.keyboard.press("ArrowLeft")  # the focused tab moves back to spark2
    expect(panel.locator('[data-host-tab="spark2"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator('[data-service="magpie-tts"]')).to_be_visible()

    # Drain spark1 (asked first), then undrain it.
    panel.locator('[data-action="drain"][data-host="spark1"]').click()
    confirm(page)
    spark1_row = panel.locator('[data-host-row="spark1"]')
    expect(spark1_row).to_have_attribute("data-host-state", "drained")
    expect(spark1_row.locator(".pill")).to_have_text("Drained")
    expect(spark1_row).to_contain_text("drained by the user")
    hosts = {h["pool"]["name"]: h["pool"] for h in board.api("/api/hosts").json()["hosts"]}
    assert hosts["spark1"]["drained"] and not hosts["spark2"]["drained"]
    board.screens(artifacts, "hosts-panel")
    panel.locator('[data-action="drain"][data-host="spark1"]').click()  # undrain: no dialog
    expect(spark1_row).to_have_attribute("data-host-state", "active")
    assert board.errors == []


def test_a_pool_of_one_shows_no_hosts_panel(sim, dashboard):
    board = dashboard(sim_settings(sim))
    board.open()
    page = board.page
    expect(page.locator('[data-service="parakeet-asr"]')).to_be_visible()
    expect(page.locator('[data-panel="hosts"]')).to_be_hidden()
    assert len(board.api("/api/hosts").json()["hosts"]) == 1
    assert board.errors == []

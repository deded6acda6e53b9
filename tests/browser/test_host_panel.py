"""The host panel in Chromium against the simulated Spark 2: figures in words beside
the bars, `[N/A]` said as "not reported", a warning shown and cleared, and the prune
action through its dialog on real dangling images. Screenshots at both widths."""

from __future__ import annotations

import io
import tarfile

import pytest
from playwright.sync_api import expect

from helpers import sim_settings

pytestmark = pytest.mark.sim


def _dangling(sim) -> None:
    for _ in range(2):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            data = bytes(range(256)) * 4096 + bytes([len(buffer.getvalue()) % 251]) * 99
            member = tarfile.TarInfo("blob")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        sim.docker("import", "-", "sim-dangle:1", input=buffer.getvalue())


def test_host_panel_figures_warning_and_prune(sim, dashboard, artifacts):
    _dangling(sim)
    sim.set_gpu("NVIDIA GB10, 97, [N/A], [N/A], 91, 95.5\n")
    board = dashboard(sim_settings(sim, host_poll_interval_s=0.5, host_gpu_temp_warn_c=85))
    try:
        board.open()
        page = board.page
        panel = page.locator('[data-panel="host"]')
        expect(panel).to_be_visible()
        expect(panel).to_have_attribute("data-reachable", "true", timeout=20_000)  # first poll
        expect(panel.locator('[data-gauge="memory"] [data-value]')).to_contain_text(" used (")
        gpu = panel.locator('[data-gauge="gpu-0"]')
        expect(gpu).to_contain_text("NVIDIA GB10")
        expect(gpu.locator("[data-value]")).to_have_text("97% busy · 91 °C · 95.5 W")
        expect(panel.locator('[data-gauge="disk:/"]')).to_contain_text("full")
        expect(panel.locator('[data-warning="gpu_temperature"]')).to_contain_text("GPU at 91 °C",
                                                                                  timeout=15_000)
        expect(panel.locator("[data-spark]").first).to_be_visible(timeout=20_000)
        expect(panel.locator("[data-spark]").first).to_have_attribute(
            "aria-label", "Memory, last hour")
        day = panel.locator('[data-range="1440"]')
        day.focus()
        page.keyboard.press("Enter")  # keyboard reachable
        expect(day).to_have_attribute("aria-pressed", "true")
        expect(panel.locator("[data-spark]").first).to_have_attribute(
            "aria-label", "Memory, last 24 h")
        board.shot(artifacts, "host-panel")

        sim.set_gpu("NVIDIA GB10, [N/A], [N/A], [N/A], [N/A], [N/A]\n")
        expect(gpu.locator("[data-value]")).to_have_text(  # the page polls every 5 s
            "utilisation not reported · temperature not reported · power not reported",
            timeout=15_000)
        # no temperature reported: no verdict either way, the warning stays until one is
        expect(panel.locator('[data-warning="gpu_temperature"]')).to_be_visible()
        sim.set_gpu("NVIDIA GB10, 4, [N/A], [N/A], 60, 10.0\n")
        expect(panel.locator("[data-host-warnings]")).to_be_hidden(timeout=15_000)

        expect(panel.locator("[data-docker-disk-text]")).to_contain_text("not in use")
        panel.locator('[data-action="prune"]').click()
        dialog = page.locator("dialog[data-confirm]")
        expect(dialog).to_contain_text("Tagged images, containers and volumes are kept")
        dialog.locator('[data-action="confirm"]').click()
        expect(panel.locator("[data-prune-message]")).to_contain_text(
            "dangling image layer(s)", timeout=20_000)
        assert sim.docker("images", "-q", "--filter", "dangling=true").stdout.split() == []
    finally:
        sim.docker("rmi", "sim-dangle:1", check=False)

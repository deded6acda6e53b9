"""The speech-model patches panel against the simulated Spark 2: drift shown per file,
reapply followed live step by step, and a broken overlay shown as rolled back."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from helpers import sim_settings
from sim.spark2 import APP_DIR, PATCHES

pytestmark = pytest.mark.sim

REAPPLY_STEPS = ["preflight", "backup", "copy", "verify", "restart", "wait_health", "confirm"]

# Records every status each step shows, so "turning ✓" is checked, not just the end.
RECORD_STEPS = """() => {
  window.stepBefore = {};  // step → the statuses it had before each change
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.oldValue) (window.stepBefore[r.target.dataset.step] ||= []).push(r.oldValue);
    }
  }).observe(document.querySelector("[data-steps]"), {subtree: true, attributes: true,
             attributeOldValue: true, attributeFilter: ["data-step-status"]});
}"""
STEP_HISTORY = """() => Object.fromEntries([...document.querySelectorAll("[data-steps] [data-step]")]
  .map((li) => [li.dataset.step, [...(window.stepBefore[li.dataset.step] || []),
                                  li.dataset.stepStatus].filter((s, i, all) => s !== all[i - 1])]))"""


def settings(sim, overlay: Path | None = None):
    return sim_settings(sim, overlay_dir=overlay or PATCHES, reapply_health_timeout_s=60)


def container_sha(sim, name: str) -> str:
    out = sim.docker("exec", "parakeet-asr", "sha256sum", f"{APP_DIR}/{name}").stdout
    return out.decode().split()[0]


def confirm(page) -> None:
    dialog = page.locator("dialog[data-confirm]")
    expect(dialog).to_be_visible()
    dialog.locator('[data-action="confirm"]').click()


def test_reapply_after_drift_turns_every_step_ok_and_the_pill_in_sync(sim, dashboard,
                                                                        artifacts):
    sim.docker("exec", "parakeet-asr", "sh", "-c", f"echo '# hotfix' >> {APP_DIR}/main.py")
    board = dashboard(settings(sim))
    board.open()
    page = board.page
    panel = page.locator('[data-panel="speech-models"]')
    overall = panel.locator("[data-overall]")

    expect(overall).to_have_attribute("data-overall", "drift")
    expect(overall).to_have_text("Drift")
    main_row = panel.locator('[data-file="main.py"]')
    expect(main_row).to_have_attribute("data-file-status", "drift")
    expect(panel.locator('[data-file="formats.py"]')).to_have_attribute("data-file-status", "in_sync")
    drifted = container_sha(sim, "main.py")
    local = hashlib.sha256((PATCHES / "main.py").read_bytes()).hexdigest()
    expect(main_row).to_contain_text(drifted[:12])
    expect(main_row).to_contain_text(local[:12])
    expect(main_row.locator(f'[title^="{drifted}"]')).to_have_count(1)  # full SHA on hover
    expect(panel.locator("[data-loaded-models]")).to_contain_text("whisper")

    page.evaluate(RECORD_STEPS)
    panel.locator('[data-action="reapply"]').click()
    confirm(page)
    job = panel.locator("[data-job]")
    expect(job).to_have_attribute("data-job-status", "running")
    expect(panel.locator('[data-action="reapply"]')).to_be_disabled()
    expect(job).to_have_attribute("data-job-status", "done", timeout=90_000)

    steps = job.locator("[data-step]")
    expect(steps).to_have_count(len(REAPPLY_STEPS))
    for name in REAPPLY_STEPS:
        step = job.locator(f'[data-step="{name}"]')
        expect(step).to_have_attribute("data-step-status", "ok")
        expect(step.locator(".icon")).to_have_text("✓")
        expect(step.locator(".step-time")).not_to_be_empty()
    history = page.evaluate(STEP_HISTORY)
    for name in REAPPLY_STEPS:  # each one was seen running, then ok
        assert history.get(name, [])[-2:] == ["running", "ok"], (name, history)
    expect(job.locator('[data-step="wait_health"] .step-detail')).to_contain_text("models loaded")
    expect(job.locator("[data-outcome]")).to_contain_text("every file is in sync")

    expect(overall).to_have_attribute("data-overall", "in_sync", timeout=20_000)
    expect(overall).to_have_text("In sync")
    expect(main_row).to_have_attribute("data-file-status", "in_sync")
    assert container_sha(sim, "main.py") == local
    expect(panel.locator('[data-action="reapply"]')).to_be_enabled()
    board.shot(artifacts, "reapply-done")


def test_broken_overlay_shows_the_failed_step_and_rolled_back(sim, dashboard, tmp_path,
                                                              artifacts):
    broken = tmp_path / "overlay"
    shutil.copytree(PATCHES, broken)
    with (broken / "formats.py").open("a") as f:
        f.write("\nraise RuntimeError('broken overlay')\n")
    original = container_sha(sim, "formats.py")
    board = dashboard(settings(sim, broken))
    board.open()
    page = board.page
    panel = page.locator('[data-panel="speech-models"]')
    expect(panel.locator("[data-overall]")).to_have_attribute("data-overall", "drift")

    panel.locator('[data-action="reapply"]').click()
    confirm(page)
    job = panel.locator("[data-job]")
    expect(job.locator('[data-step="copy"]')).to_have_attribute("data-step-status", "ok")
    # Reloading while the job runs reattaches to it.
    page.reload()
    job = page.locator('[data-panel="speech-models"] [data-job]')
    expect(job).to_be_visible()
    expect(job).to_have_attribute("data-job-status", "failed", timeout=90_000)

    wait = job.locator('[data-step="wait_health"]')
    expect(wait).to_have_attribute("data-step-status", "failed")
    expect(wait.locator(".icon")).to_have_text("✗")
    expect(wait.locator(".step-detail")).to_contain_text("broken overlay")
    expect(job.locator('[data-step="confirm"]')).to_have_attribute("data-step-status", "skipped")
    expect(job).to_have_attribute("data-rolled-back", "true")
    outcome = job.locator("[data-outcome]")
    expect(outcome.locator("[data-rolled-back-pill]")).to_have_text("Rolled back")
    expect(outcome).to_contain_text("rolled back: wait_health failed")
    expect(outcome).to_contain_text("broken overlay")
    expect(outcome).to_contain_text("✗")

    # The container runs the previous files again, healthy; the page says so.
    assert container_sha(sim, "formats.py") == original
    expect(page.locator('[data-service="parakeet-asr"]')).to_have_attribute(
        "data-state", "healthy", timeout=20_000)
    expect(panel.locator('[data-file="formats.py"]')).to_have_attribute("data-file-status", "drift")
    board.shot(artifacts, "rolled-back", widths=("desktop",))

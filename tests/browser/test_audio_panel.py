"""The audio panel end to end: a generated conversation uploaded through the page,
transcribed by the CPU speech engine running in the simulated parakeet-asr, shown as
speaker blocks that match the API's result. Also writes the dashboard screenshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from helpers import sim_settings

pytestmark = pytest.mark.sim

# A file dropped on the drop zone the way a browser delivers it.
DROP = """(zone, [name, text]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, {type: "text/plain"}));
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}"""

# The job box's statuses and stage lines as the page showed them, in order.
RECORD_JOB = """() => {
  window.jobSeen = [];
  const box = document.querySelector("[data-audio-job]");
  const note = () => {
    const entry = box.dataset.audioStatus + " | " + box.querySelector("[data-audio-stage]").textContent;
    if (box.dataset.audioStatus && window.jobSeen.at(-1) !== entry) window.jobSeen.push(entry);
  };
  new MutationObserver(note).observe(box, {subtree: true, childList: true,
                                           characterData: true, attributes: true});
}"""


def test_upload_shows_speaker_blocks_matching_the_result(sim, dashboard, conversation,
                                                         tmp_path, artifacts):
    # Chunks of 40 s overlapping by 10 s: the 50 s conversation is cut in two, so the
    # page has chunk progress to show (the same code path as 10-minute chunks).
    board = dashboard(sim_settings(sim, data_dir=tmp_path / "data", chunk_threshold_s=40,
                                   chunk_s=40, chunk_overlap_s=10))
    board.open()
    page = board.page
    panel = page.locator('[data-panel="audio"]')
    expect(page.locator('[data-service="parakeet-asr"]')).to_have_attribute("data-state", "healthy")

    # Dropped on the drop zone, not audio: the server's reason, readable, not raw JSON.
    panel.locator("[data-dropzone]").evaluate(DROP, ["notes.txt", "meeting notes, not audio\n"])
    error = panel.locator("[data-audio-message]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("notes.txt was not accepted:")
    assert "{" not in error.inner_text() and "detail" not in error.inner_text()
    expect(panel.locator("[data-audio-job]")).to_be_hidden()

    page.evaluate(RECORD_JOB)
    panel.locator("[data-audio-input]").set_input_files(str(conversation.wav))
    job = panel.locator("[data-audio-job]")
    expect(job).to_have_attribute("data-audio-status", "done", timeout=120_000)
    expect(error).to_be_hidden()
    seen = page.evaluate("window.jobSeen")
    assert any(s.startswith("running | ") for s in seen), seen  # progress was shown live
    assert any("Transcribing · chunk 1 of 2" in s for s in seen), seen
    assert any("Transcribing · chunk 2 of 2" in s for s in seen), seen
    assert seen[-1].startswith("done | Finished"), seen
    expect(job.locator("[data-audio-hosts]")).to_have_text("Ran on spark2 (chunks 1, 2)")

    job_id = job.get_attribute("data-audio-job")
    result = board.api(f"/api/audio/jobs/{job_id}/result?format=json").json()
    speakers = list(dict.fromkeys(s["speaker"] for s in result["segments"]))
    assert len(speakers) >= 2, result  # a conversation, not a monologue
    blocks = panel.locator("[data-block]")
    expect(blocks).to_have_count(len(result["segments"]))
    shown = blocks.evaluate_all("""els => els.map(e => [e.dataset.speaker, Number(e.dataset.startMs),
                                   e.querySelector('[data-text]').textContent])""")
    assert shown == [[s["speaker"], s["start_ms"], s["text"]] for s in result["segments"]]
    expect(panel.locator("[data-result-meta]")).to_contain_text(f"{len(speakers)} speakers")
    assert result["chunks"] == 2
    expect(panel.locator("[data-result-meta]")).to_contain_text("2 chunks")

    # Speaker colours: one per speaker, the same on a block and its timeline lane.
    colour = """(el) => getComputedStyle(el).borderLeftColor"""
    block_colours = {spk: panel.locator(f'[data-block][data-speaker="{spk}"]').first.evaluate(colour)
                     for spk in speakers}
    assert len(set(block_colours.values())) == len(speakers), block_colours
    lanes = panel.locator("[data-timeline] [data-lane]")
    expect(lanes).to_have_count(len(speakers))
    expect(panel.locator("[data-timeline] .seg")).to_have_count(len(result["segments"]))
    lane_colour = panel.locator(f'[data-lane="{speakers[0]}"] .seg').first.evaluate(
        "(el) => getComputedStyle(el).backgroundColor")
    assert lane_colour == block_colours[speakers[0]]

    # Clicking a block seeks the player to it.
    target = result["segments"][2]
    blocks.nth(2).locator("[data-text]").click()
    position = page.locator("[data-player]").evaluate("(a) => a.currentTime")
    assert abs(position - target["start_ms"] / 1000) < 1.0, (position, target)
    expect(blocks.nth(2)).to_have_class(re.compile(r"\bplaying\b"))

    # No one is enrolled: the legend offers to save each speaker as a known speaker.
    unmatched = [s["label"] for s in result["speakers"] if not s["name"]]
    assert set(speakers) <= set(unmatched), result["speakers"]
    expect(panel.locator("[data-speaker-legend]")).to_have_count(len(speakers))
    for label in unmatched:
        legend = panel.locator(f'[data-speaker-legend="{label}"]')
        expect(legend.locator(f'[data-enroll-as="{label}"]')).to_be_visible()
        expect(legend.locator('[data-action="enroll-speaker"]')).to_have_text("Save as known speaker")

    # Downloads are the API's own renderings.
    for fmt in ("srt", "txt"):
        with page.expect_download() as info:
            panel.locator(f'[data-download="{fmt}"]').click()
        download = info.value
        assert download.suggested_filename == f"conversation.{fmt}"
        expected = board.api(f"/api/audio/jobs/{job_id}/result?format={fmt}").text()
        assert Path(download.path()).read_text() == expected

    board.screens(artifacts, "dashboard")

    # A reload comes back to the same result; the player needs the file.
    page.reload()
    expect(panel.locator("[data-audio-job]")).to_have_attribute("data-audio-status", "done")
    expect(blocks).to_have_count(len(result["segments"]))
    expect(panel.locator(f'[data-enroll-as="{speakers[0]}"]')).to_be_visible()
    expect(panel.locator("[data-player-note]")).to_be_visible()
    expect(panel.locator(f'[data-audio-job-item="{job_id}"]')).to_have_attribute("data-status", "done")


def test_signing_in_with_the_token(sim, dashboard):
    board = dashboard(sim_settings(sim))
    assert board.token, "auth is on by default"
    page = board.page
    page.goto(board.url + "/")  # no session cookie yet
    login = page.locator("[data-login]")
    expect(login).to_be_visible()
    expect(page.locator('[data-panel="services"]')).to_be_hidden()
    expect(page.locator("[data-login-token]")).to_be_focused()

    page.locator("[data-login-token]").fill("not-the-token-at-all")
    page.locator('[data-login-form] button[type="submit"]').click()
    expect(page.locator("[data-login-message]")).to_contain_text("wrong token")

    page.locator("[data-login-token]").fill(board.token)
    page.locator('[data-login-form] button[type="submit"]').click()
    expect(page.locator('[data-service="parakeet-asr"]')).to_have_attribute("data-state", "healthy")
    expect(login).to_be_hidden()

    page.locator("[data-logout]").click()  # the session ends: back to the sign-in form
    expect(login).to_be_visible()
    assert "spark_control_session" not in {c["name"] for c in page.context.cookies()}

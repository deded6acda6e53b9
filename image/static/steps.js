// A job's steps as a list that updates in place, so each one visibly turns from ○ to
// a spinner to ✓ (the overlay reapply and the speech-server install share it).

import { el, seconds, setText } from "./ui.js";

const STEP_ICON = { ok: "✓", failed: "✗", running: "", pending: "○", skipped: "–" };
const STEP_WORD = { ok: "done", failed: "failed", running: "running", pending: "waiting", skipped: "skipped" };

export function renderSteps(list, job, labels) {
  if (list.dataset.jobId !== job.id) {
    list.dataset.jobId = job.id;
    list.replaceChildren(...job.steps.map((s) => el("li", { class: "step", dataset: { step: s.name } },
      el("span", { class: "icon", "aria-hidden": "true" }),
      el("span", { class: "step-name" }, labels[s.name] ?? s.name),
      el("span", { class: "visually-hidden step-word" }),
      el("span", { class: "step-time" }),
      el("p", { class: "step-detail" }))));
  }
  for (const s of job.steps) {
    const item = list.querySelector(`[data-step="${CSS.escape(s.name)}"]`);
    if (!item) continue;
    item.dataset.stepStatus = s.status;
    item.dataset.startedAt = s.started_at ?? "";
    setText(item.querySelector(".icon"), STEP_ICON[s.status] ?? "");
    setText(item.querySelector(".step-word"), `: ${STEP_WORD[s.status] ?? s.status}`);
    setText(item.querySelector(".step-time"), s.duration_s != null ? seconds(s.duration_s) : "");
    const detail = item.querySelector(".step-detail");
    setText(detail, s.detail);
    detail.hidden = !s.detail;
  }
}

// A running step shows how long it has been going, e.g. while the models load.
export function tickRunning(list) {
  for (const item of list.querySelectorAll('[data-step-status="running"]')) {
    const started = Number(item.dataset.startedAt);
    if (started) setText(item.querySelector(".step-time"), `${Math.max(0, Math.round(Date.now() / 1000 - started))} s…`);
  }
}

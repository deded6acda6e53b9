// Speech-model patches panel: drift of the overlay files in parakeet-asr, and the
// reapply/restart jobs with their live progress (SSE).

import { fetchJSON, followJob, isUnauthorized, HOST_CHANGED } from "./api.js";
import { refreshServices } from "./services.js";
import { renderSteps, tickRunning } from "./steps.js";
import { $, ago, confirmAction, copyText, el, fullTime, pill, poll, setText,
         showMessage, updatePill } from "./ui.js";

const OVERALL = {
  in_sync: ["In sync", "ok"],
  drift: ["Drift", "warn"],
  missing: ["Files missing", "bad"],
  unreachable: ["Unreachable", "bad"],
  local: ["Local mode", "off"], // no container: the server runs the shipped files as they are
};
const FILE_STATUS = { in_sync: ["In sync", "ok"], drift: ["Drift", "warn"], missing: ["Missing", "bad"] };
const STEP_LABEL = {
  preflight: "Preflight: container running",
  backup: "Back up the current files",
  copy: "Copy the overlay in",
  verify: "Verify: files compile",
  restart: "Restart the container",
  wait_health: "Wait for the models to load",
  confirm: "Confirm the hashes",
};
const KIND_LABEL = { reapply: "Reapply overlay", restart: "Restart parakeet-asr" };
const POLL_MS = 15000; // each uncached read is a `docker exec` on Spark 2
const JOB_KEY = "spark-control.speech-job"; // survives a reload of this tab

let panel;
let status = null;
let job = null; // the JobView shown in the progress panel
let following = null; // id of the job whose stream is open
let ticker = null;
let poller = null;
let notConfigured = false;

// Another panel changed the container (an install or upgrade): read the drift now.
export function refreshSpeechModels() {
  poller?.now();
}

export function startSpeechModels() {
  panel = $('[data-panel="speech-models"]');
  $('[data-action="reapply"]', panel).addEventListener("click", () => startJob("reapply"));
  $('[data-action="restart-models"]', panel).addEventListener("click", () => startJob("restart"));
  $('[data-action="dismiss-job"]', panel).addEventListener("click", dismissJob);
  resumeStoredJob();
  poller = poll(refresh, () => POLL_MS);
  window.addEventListener(HOST_CHANGED, () => poller.now());
}

// -- status ---------------------------------------------------------------------

async function refresh() {
  if (isRunning()) return; // the job stream is the live view; its end refreshes us
  const message = $("[data-models-message]", panel);
  try {
    status = await fetchJSON("/api/speech-models");
  } catch (err) {
    if (isUnauthorized(err)) return;
    showMessage(message, `Cannot read the patch status: ${err.message}`, "error");
    message.dataset.source = "status";
    // Without a Spark (local mode) there is no container to patch.
    notConfigured = err.body?.error === "not_configured";
    updateButtons();
    return;
  }
  if (message.dataset.source === "status") showMessage(message, "");
  renderStatus(status);
  if (status.running_job && following !== status.running_job) attach(status.running_job);
}

function renderStatus(s) {
  const overall = $("[data-overall]", panel);
  const [label, tone] = OVERALL[s.status] ?? [s.status, "off"];
  updatePill(overall, label, tone);
  overall.dataset.overall = s.status;
  setText($("[data-models-detail]", panel), s.detail);
  const checked = $("[data-models-checked]", panel);
  setText(checked, s.checked_at ? `checked ${ago(s.checked_at)}` : "");
  checked.title = fullTime(s.checked_at);
  renderLoaded(s);
  renderFiles(s.files);
  $(".table-wrap", panel).hidden = s.files.length === 0;
  notConfigured = s.status === "local"; // nothing to reapply without a Spark
  updateButtons();
}

function renderLoaded(s) {
  const box = $("[data-loaded-models]", panel);
  const healthy = s.health?.ok;
  const chips = s.models.map((m) => pill(m, healthy ? "ok" : "off", { dataset: { model: m } }));
  box.replaceChildren(...(chips.length ? chips
    : [el("span", { class: "muted" }, healthy === false ? `not loaded: ${s.health.detail}` : "none reported")]));
}

function renderFiles(files) {
  const body = $("[data-files]", panel);
  body.replaceChildren(...files.map((f) => {
    const [label, tone] = FILE_STATUS[f.status] ?? [f.status, "off"];
    return el("tr", { dataset: { file: f.name, fileStatus: f.status } },
      el("th", { scope: "row", title: f.path }, f.name),
      el("td", { "data-label": "Local" }, sha(f.local_sha256)),
      el("td", { "data-label": "Container" }, sha(f.container_sha256)),
      el("td", { "data-label": "Status" }, pill(label, tone)));
  }));
}

// Short SHA on screen, the full one on hover and on click (copied).
function sha(value) {
  if (!value) return el("span", { class: "muted" }, "—");
  const button = el("button", { type: "button", class: "sha", title: `${value} (click to copy)`,
                                "aria-label": `SHA-256 ${value}, copy` }, value.slice(0, 12));
  button.addEventListener("click", async () => {
    try {
      await copyText(value);
      flash(button, "copied");
    } catch {
      flash(button, "copy failed");
    }
  });
  return button;
}

function flash(button, text) {
  const short = button.textContent;
  button.textContent = text;
  setTimeout(() => { button.textContent = short; }, 1200);
}

// -- jobs -----------------------------------------------------------------------

const CONFIRM = {
  reapply: () => ({
    title: "Reapply the overlay to parakeet-asr?",
    body: "The current files are backed up inside the container, the overlay is copied " +
          "in and compiled, and parakeet-asr restarts: transcription is unavailable until " +
          "its models load. If they do not, the originals are put back.",
    confirm: "Reapply", danger: true }),
  restart: () => ({
    title: "Restart parakeet-asr?",
    body: "Requests running on parakeet-asr are cut off; it is unavailable until its " +
          "models have loaded again.",
    confirm: "Restart", danger: true }),
};

async function startJob(kind) {
  if (!(await confirmAction(CONFIRM[kind]()))) return;
  const message = $("[data-models-message]", panel);
  showMessage(message, "");
  try {
    const view = await fetchJSON(`/api/speech-models/${kind}`, { method: "POST" });
    attach(view.id, view);
  } catch (err) {
    showMessage(message, `${KIND_LABEL[kind]} refused: ${err.message}`, "error");
    message.dataset.source = "action";
    poller.now(); // a 409 means a job runs: the status names it and we attach
  }
}

async function resumeStoredJob() {
  const id = sessionStorage.getItem(JOB_KEY);
  if (!id || following) return;
  try {
    const view = await fetchJSON(`/api/speech-models/jobs/${encodeURIComponent(id)}`);
    if (following) return; // the status poll attached to the running job already
    if (view.status === "running") attach(id, view);
    else { job = view; renderJob(); }
  } catch {
    sessionStorage.removeItem(JOB_KEY); // spark-control restarted and forgot it
  }
}

async function attach(id, view = null) {
  following = id;
  sessionStorage.setItem(JOB_KEY, id);
  if (view) { job = view; renderJob(); }
  updateButtons();
  try {
    await followJob(`/api/speech-models/jobs/${encodeURIComponent(id)}/stream`, (ev) => {
      if (following !== id) return;
      job = JSON.parse(ev.data);
      renderJob();
    }, ["done", "failed"]);
  } catch (err) {
    if (following === id) {
      showMessage($("[data-models-message]", panel), `Lost the job's progress: ${err.message}`, "error");
    }
  }
  if (following !== id) return;
  following = null;
  updateButtons();
  poller.now(); // the hashes changed: show the new drift state right away
  refreshServices();
}

function dismissJob() {
  sessionStorage.removeItem(JOB_KEY);
  job = null;
  renderJob();
}

function isRunning() {
  return Boolean(following) || job?.status === "running";
}

function updateButtons() {
  const busy = isRunning() || Boolean(status?.running_job) || notConfigured;
  for (const action of ["reapply", "restart-models"]) {
    $(`[data-action="${action}"]`, panel).disabled = busy;
  }
}

// -- the progress panel -----------------------------------------------------------

function renderJob() {
  const box = $("[data-job]", panel);
  box.hidden = !job;
  clearInterval(ticker);
  if (!job) return;
  box.dataset.jobId = job.id;
  box.dataset.jobKind = job.kind;
  box.dataset.jobStatus = job.status;
  box.dataset.rolledBack = String(job.rolled_back);
  const state = { running: "running", done: "done", failed: "failed" }[job.status];
  setText($("[data-job-title]", box), `${KIND_LABEL[job.kind] ?? job.kind} — ${state}`);
  setText($("[data-job-started]", box), `started ${ago(job.created_at)}`);
  renderSteps($("[data-steps]", box), job, STEP_LABEL);
  renderOutcome($("[data-outcome]", box), job);
  $('[data-action="dismiss-job"]', panel).hidden = job.status === "running";
  if (job.status === "running") ticker = setInterval(() => tickRunning($("[data-steps]", panel)), 1000);
}

function renderOutcome(node, j) {
  node.hidden = j.status === "running";
  node.className = `outcome outcome-${j.status}`;
  node.replaceChildren();
  if (j.status === "running") return;
  if (j.rolled_back) node.append(pill("Rolled back", "warn", { dataset: { rolledBackPill: "" } }), " ");
  node.append(el("span", {}, j.status === "done" ? `✓ ${j.outcome}` : `✗ ${j.outcome}`));
}

// Speech server panel: what parakeet-asr runs (installed / outdated / missing), and the
// install, upgrade and rollback jobs in a <dialog> with their steps, elapsed time and
// the build log as it streams (SSE).

import { fetchJSON, followJob, isUnauthorized, HOST_CHANGED } from "./api.js";
import { refreshServices, setServiceBadge } from "./services.js";
import { refreshSpeechModels } from "./speech-models.js";
import { renderSteps, tickRunning } from "./steps.js";
import { $, ago, clock, confirmAction, el, poll, setText, showMessage, updatePill } from "./ui.js";

const STATE = {
  installed: ["Installed", "ok"],
  outdated: ["Upgrade available", "warn"],
  unmanaged: ["Built by hand", "warn"],
  missing: ["Not installed", "bad"],
  unreachable: ["Unreachable", "bad"],
  local: ["Local mode", "off"],
};
const STEP_LABEL = {
  context: "Pack the build context",
  build: "Build the image on the Spark",
  start: "Start the new container",
  health: "Wait for the models to load",
  probe: "Probe: a real tiny transcription",
  switch: "Switch over",
  cleanup: "Clean up (keep the previous image)",
};
const KIND_LABEL = { install: "Install speech server", upgrade: "Upgrade speech server",
                     rollback: "Roll back speech server" };
const POLL_MS = 20000;
const LOG_LINES_SHOWN = 4000; // a 20-minute build logs thousands: the DOM keeps the tail
const JOB_KEY = "spark-control.server-job";

let panel;
let dialog;
let status = null;
let job = null;
let following = null;
let ticker = null;
let poller = null;
let logState = { jobId: null, shown: 0, total: 0, pending: [], frame: 0 };

export function startSpeechServer() {
  panel = $('[data-panel="speech-server"]');
  dialog = $("#server-job");
  for (const kind of ["install", "upgrade", "rollback"]) {
    $(`[data-action="${kind}-server"]`, panel).addEventListener("click", () => startJob(kind));
  }
  $('[data-action="show-server-job"]', panel).addEventListener("click", () => dialog.showModal());
  $('[data-action="cancel-server-job"]', dialog).addEventListener("click", cancelJob);
  $('[data-action="close-server-job"]', dialog).addEventListener("click", () => dialog.close());
  const log = $("[data-server-log]", dialog);
  log.addEventListener("scroll", () => { $("[data-log-follow]", dialog).checked = atBottom(log); });
  $("[data-log-follow]", dialog).addEventListener("change", (e) => { if (e.target.checked) toBottom(log); });
  resumeStoredJob();
  poller = poll(refresh, () => POLL_MS);
  window.addEventListener(HOST_CHANGED, () => poller.now());
}

// -- status ---------------------------------------------------------------------------

async function refresh() {
  const message = $("[data-server-message]", panel);
  try {
    status = await fetchJSON("/api/speech-server");
  } catch (err) {
    if (!isUnauthorized(err)) showMessage(message, `Cannot read the speech server: ${err.message}`, "error");
    return;
  }
  if (message.dataset.source === "status") showMessage(message, "");
  renderStatus(status);
  if (status.running_job && following !== status.running_job) attach(status.running_job);
}

function renderStatus(s) {
  panel.hidden = s.state === "local";
  const [label, tone] = STATE[s.state] ?? [s.state, "off"];
  const node = $("[data-server-state]", panel);
  updatePill(node, label, tone);
  node.dataset.serverState = s.state;
  setText($("[data-server-detail]", panel), s.detail);
  renderFacts($("[data-server-facts]", panel), s);
  setServiceBadge(s.container, s.upgrade_available
    ? { label: "Upgrade available", tone: "warn", title: s.detail } : null);
  updateButtons();
}

function renderFacts(list, s) {
  const image = (view) => view ? `${view.image}${view.version ? ` (spark-control ${view.version})` : ""}` : "none";
  const facts = [
    ["Running", image(s.current)],
    ["This spark-control builds", s.local_context ? `context ${s.local_context.slice(0, 12)} (spark-control ${s.local_version})` : "—"],
    ["Previous (rollback)", image(s.previous)],
  ];
  if (s.settings) {
    const t = s.settings;
    facts.push(["Build", `${t.engine} engine on ${t.base}`],
               ["Runs with", `port ${t.port} (upgrades start beside it on ${t.spare_port}), memory cap ${t.memory_limit}, no swap, GPUs ${t.gpus}, ${t.network}`]);
  }
  list.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { fact: k } }, v)]));
}

function updateButtons() {
  const busy = Boolean(following) || Boolean(status?.running_job);
  const state = status?.state;
  const show = {
    install: state === "missing",
    upgrade: ["installed", "outdated", "unmanaged"].includes(state),
    rollback: Boolean(status?.previous) && state !== "missing",
  };
  for (const [kind, visible] of Object.entries(show)) {
    const button = $(`[data-action="${kind}-server"]`, panel);
    button.hidden = !visible;
    button.disabled = busy || state === "unreachable";
  }
  $('[data-action="show-server-job"]', panel).hidden = !job;
}

// -- jobs ------------------------------------------------------------------------------

const CONFIRM = {
  install: () => ({
    title: "Install the speech server on the Spark?",
    body: "spark-control sends its build context over SSH and builds the image there " +
          "(the first build downloads the engine's packages: many minutes), then runs " +
          "parakeet-asr with its memory cap and waits until its models have loaded.",
    confirm: "Install" }),
  upgrade: () => ({
    title: "Upgrade the speech server?",
    body: "The new image is built and started beside the running server; only when its " +
          "models have loaded and a test transcription answers does it take over. If " +
          "anything fails, the running server is left as it is. The previous image is " +
          "kept for a rollback.",
    confirm: "Upgrade" }),
  rollback: () => ({
    title: "Roll back to the previous image?",
    body: `The previous image (${status?.previous?.image ?? "?"}) is started beside the ` +
          "running server and takes over once it answers, as in an upgrade.",
    confirm: "Roll back", danger: true }),
};

async function startJob(kind) {
  if (!(await confirmAction(CONFIRM[kind]()))) return;
  const message = $("[data-server-message]", panel);
  showMessage(message, "");
  try {
    const view = await fetchJSON(`/api/speech-server/${kind}`, { method: "POST" });
    attach(view.id, view);
  } catch (err) {
    showMessage(message, `${KIND_LABEL[kind]} refused: ${err.message}`, "error");
    message.dataset.source = "action";
    poller.now();
  }
}

async function cancelJob() {
  if (!job || job.status !== "running") return;
  const button = $('[data-action="cancel-server-job"]', dialog);
  button.disabled = true;
  try {
    await fetchJSON(`/api/speech-server/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
    setText($("[data-server-job-note]", dialog), "Cancelling: ending the build and removing what it made…");
  } catch (err) {
    setText($("[data-server-job-note]", dialog), `Cancel refused: ${err.message}`);
    button.disabled = false;
  }
}

async function resumeStoredJob() {
  const id = sessionStorage.getItem(JOB_KEY);
  if (!id || following) return;
  try {
    const view = await fetchJSON(`/api/speech-server/jobs/${encodeURIComponent(id)}`);
    if (following) return;
    if (view.status === "running") attach(id, view);
    else { job = view; renderJob(); }
  } catch {
    sessionStorage.removeItem(JOB_KEY);
  }
}

async function attach(id, view = null) {
  following = id;
  sessionStorage.setItem(JOB_KEY, id);
  resetLog(id);
  if (view) { job = view; renderJob(); }
  if (!dialog.open) dialog.showModal();
  updateButtons();
  try {
    await followJob(`/api/speech-server/jobs/${encodeURIComponent(id)}/stream`, (ev) => {
      if (following !== id) return;
      if (ev.event === "log") { queueLine(JSON.parse(ev.data)); return; }
      job = JSON.parse(ev.data);
      renderJob();
    }, ["done", "failed"]);
  } catch (err) {
    if (following === id) setText($("[data-server-job-note]", dialog), `Lost the job's progress: ${err.message}`);
  }
  if (following !== id) return;
  following = null;
  updateButtons();
  poller.now();
  refreshServices();
  refreshSpeechModels();
}

function renderJob() {
  clearInterval(ticker);
  if (!job) return;
  dialog.dataset.jobId = job.id;
  dialog.dataset.jobKind = job.kind;
  dialog.dataset.jobStatus = job.status;
  const state = { running: "running", done: "done", failed: "failed" }[job.status];
  setText($("[data-server-job-title]", dialog), `${KIND_LABEL[job.kind] ?? job.kind} — ${state}`);
  renderSteps($("[data-server-steps]", dialog), job, STEP_LABEL);
  const outcome = $("[data-server-outcome]", dialog);
  outcome.hidden = job.status === "running";
  outcome.className = `outcome outcome-${job.status}`;
  setText(outcome, job.status === "running" ? "" : `${job.status === "done" ? "✓" : "✗"} ${job.outcome}`);
  $('[data-action="cancel-server-job"]', dialog).hidden = job.status !== "running";
  $('[data-action="cancel-server-job"]', dialog).disabled = job.status !== "running";
  if (job.status !== "running") setText($("[data-server-job-note]", dialog), "");
  tick();
  if (job.status === "running") ticker = setInterval(tick, 1000);
  updateButtons();
}

function tick() {
  const end = job.finished_at ?? Date.now() / 1000;
  setText($("[data-server-job-elapsed]", dialog),
    `${job.status === "running" ? "running for" : "took"} ${clock((end - job.created_at) * 1000)} · started ${ago(job.created_at)}`);
  tickRunning($("[data-server-steps]", dialog));
}

// -- the build log: appended in batches, once per frame; the oldest lines leave the DOM --

function resetLog(id) {
  if (logState.jobId === id) return;
  cancelAnimationFrame(logState.frame);
  logState = { jobId: id, shown: 0, total: 0, pending: [], frame: 0 };
  $("[data-server-log]", dialog).replaceChildren();
  setText($("[data-log-count]", dialog), "0");
  $("[data-log-dropped]", dialog).hidden = true;
}

function queueLine(event) {
  logState.pending.push(event.line);
  logState.total = Math.max(logState.total, event.seq);
  if (!logState.frame) logState.frame = requestAnimationFrame(flushLog);
}

function flushLog() {
  const log = $("[data-server-log]", dialog);
  const follow = $("[data-log-follow]", dialog).checked;
  const lines = logState.pending.splice(0);
  logState.frame = 0;
  log.append(...lines.map((line) => el("span", { class: "log-line" }, line + "\n")));
  logState.shown += lines.length;
  let dropped = 0;
  while (log.childElementCount > LOG_LINES_SHOWN) { log.firstElementChild.remove(); dropped += 1; }
  if (dropped) {
    const note = $("[data-log-dropped]", dialog);
    note.hidden = false;
    note.dataset.count = String(Number(note.dataset.count || 0) + dropped);
    setText(note, `${note.dataset.count} earlier lines are not shown (GET /api/speech-server/jobs/${logState.jobId}/log?tail=5000 has them)`);
  }
  setText($("[data-log-count]", dialog), String(logState.shown));
  if (follow) toBottom(log);
}

function atBottom(node) {
  return node.scrollHeight - node.scrollTop - node.clientHeight < 24;
}

function toBottom(node) {
  node.scrollTop = node.scrollHeight;
}

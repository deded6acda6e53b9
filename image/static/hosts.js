// Hosts panel: the speech hosts of the pool from GET /api/hosts (cached readings, so an
// unreachable host never slows it): state in words, work in flight, a drain toggle per
// host, tabs that pick the host the per-host panels below show, and the reapply of the
// overlay on every host, one at a time. Hidden for a pool of one (nothing to choose).

import { fetchJSON, followJob, isUnauthorized, setHost, currentHost } from "./api.js";
import { renderSteps, tickRunning } from "./steps.js";
import { $, confirmAction, el, fullTime, pill, poll, setText, showMessage } from "./ui.js";

const STATE = {
  active: ["Taking work", "ok"],
  drained: ["Drained", "warn"],
  down: ["Down", "bad"],
  refused: ["Refused", "bad"],
  none: ["No speech server", "off"],
};
const POLL_MS = 3000;
let panel = null;
let latest = null;
let ticker = null;

export function startHosts() {
  panel = $('[data-panel="hosts"]');
  $('[data-action="reapply-all"]', panel).addEventListener("click", reapplyAll);
  $("[data-host-tabs]", panel).addEventListener("keydown", moveBetweenTabs);
  poll(refresh, () => POLL_MS);
}

async function refresh() {
  try {
    latest = await fetchJSON("/api/hosts");
  } catch (err) {
    if (!isUnauthorized(err)) showMessage($("[data-hosts-message]", panel), `Cannot load the hosts: ${err.message}`, "error");
    return;
  }
  panel.hidden = latest.hosts.length < 2;
  if (panel.hidden) return;
  const focused = document.activeElement?.dataset ?? {}; // kept across the re-render
  renderSummary(latest);
  renderRows(latest.hosts);
  renderTabs(latest.hosts);
  const again = focused.hostTab ? $(`[data-host-tab="${CSS.escape(currentHost() ?? focused.hostTab)}"]`, panel)
    : focused.action === "drain" ? $(`[data-action="drain"][data-host="${CSS.escape(focused.host)}"]`, panel) : null;
  again?.focus();
}

function whole(s) {
  return `${Math.round(s)} s`;
}

function renderSummary(pool) {
  const model = pool.embedding_model ? ` · voice prints: ${pool.embedding_model}` : "";
  setText($("[data-pool-summary]", panel),
    `${pool.taking_work} of ${pool.hosts.length} taking work · ${whole(pool.outstanding_s)} of audio in flight${model}`);
}

// -- the table ----------------------------------------------------------------------

function renderRows(hosts) {
  const body = $("[data-hosts]", panel);
  body.replaceChildren(...hosts.map((h) => row(h)));
}

function row(host) {
  const p = host.pool;
  const [label, tone] = STATE[p.state] ?? [p.state, "off"];
  const share = p.concurrency ? p.in_flight / p.concurrency : 0;
  const toggle = el("button", { type: "button", class: "btn btn-small", "aria-pressed": String(p.drained),
    dataset: { action: "drain", host: p.name } }, p.drained ? "Undrain" : "Drain…");
  toggle.disabled = p.state === "none" || (p.drained && p.drained_by !== "by the user");
  toggle.addEventListener("click", () => toggleDrain(p));
  return el("tr", { dataset: { hostRow: p.name, hostState: p.state } },
    el("th", { scope: "row" }, p.name, el("br"), el("span", { class: "muted" }, p.managed ? p.address : `${p.address} (URL only)`)),
    el("td", {}, pill(label, tone), el("p", { class: "muted host-detail" }, p.detail)),
    el("td", {}, el("meter", { min: "0", max: "1", value: String(share), "aria-label": `${p.name} slots in use` }),
      el("span", { dataset: { hostLoad: p.name } }, ` ${whole(p.outstanding_s)} in flight · ${p.in_flight}/${p.concurrency} slots`)),
    el("td", {}, `${p.served} done`, p.failed ? el("span", { class: "muted" }, ` · ${p.failed} failed and moved`) : ""),
    el("td", {}, toggle));
}

async function toggleDrain(p) {
  const message = $("[data-hosts-message]", panel);
  if (!p.drained) {
    const ok = await confirmAction({ title: `Drain ${p.name}?`,
      body: `No new work goes to ${p.name}; what it is doing now finishes. The other hosts take its share until you undrain it.`,
      confirm: `Drain ${p.name}` });
    if (!ok) return;
  }
  try {
    await fetchJSON(`/api/hosts/${encodeURIComponent(p.name)}/drain`, { method: "PUT", json: { drained: !p.drained } });
    showMessage(message, `${p.name} ${p.drained ? "takes work again" : "is drained: no new work goes to it"}.`, "ok");
  } catch (err) {
    showMessage(message, `Could not change ${p.name}: ${err.message}`, "error");
  }
  refresh();
}

// -- which host the panels below show ---------------------------------------------

function renderTabs(hosts) {
  const tabs = $("[data-host-tabs]", panel);
  const chosen = currentHost() ?? hosts[0].pool.name;
  tabs.replaceChildren(...hosts.map((h) => {
    const [label] = STATE[h.pool.state] ?? [h.pool.state];
    const selected = h.pool.name === chosen;
    const tab = el("button", { type: "button", role: "tab", class: "btn btn-small tab",
      "aria-selected": String(selected), tabindex: selected ? "0" : "-1",
      dataset: { hostTab: h.pool.name } }, `${h.pool.name} (${label.toLowerCase()})`);
    tab.addEventListener("click", () => choose(h.pool.name));
    return tab;
  }));
  setText($("#host-title"), `Host ${chosen}`);
}

function choose(name) {
  setHost(name);
  if (latest) renderTabs(latest.hosts);
  $(`[data-host-tab="${CSS.escape(name)}"]`, panel)?.focus();
}

// Arrow keys move along the tabs (the WAI-ARIA tabs pattern).
function moveBetweenTabs(e) {
  if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key) || !latest) return;
  const names = latest.hosts.map((h) => h.pool.name);
  const at = names.indexOf(currentHost() ?? names[0]);
  const next = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: names.length - 1 }[e.key];
  e.preventDefault();
  choose(names[(next + names.length) % names.length]);
}

// -- reapply on every host ----------------------------------------------------------

async function reapplyAll() {
  const names = (latest?.hosts ?? []).filter((h) => h.pool.managed).map((h) => h.pool.name);
  const ok = await confirmAction({ title: "Reapply the overlay on every host?",
    body: `One host at a time (${names.join(", ")}): each is drained, patched, restarted and checked while the others keep serving. The first failure stops the roll.`,
    confirm: "Reapply on every host" });
  if (!ok) return;
  const message = $("[data-hosts-message]", panel);
  try {
    const job = await fetchJSON("/api/hosts/reapply", { method: "POST" });
    showMessage(message, "");
    await follow(job);
  } catch (err) {
    showMessage(message, `Reapply on every host failed to start: ${err.message}`, "error");
  }
}

async function follow(job) {
  const box = $("[data-pool-job]", panel);
  box.hidden = false;
  box.dataset.poolJob = job.id;
  setText($("[data-pool-job-started]", box), `started ${fullTime(job.created_at)}`);
  render(job);
  clearInterval(ticker);
  ticker = setInterval(() => tickRunning($("[data-pool-steps]", box)), 1000);
  try {
    await followJob(`/api/hosts/jobs/${encodeURIComponent(job.id)}/stream`,
      (ev) => render(JSON.parse(ev.data)), ["done", "failed"]);
  } finally {
    clearInterval(ticker);
    refresh();
  }
}

function render(job) {
  const box = $("[data-pool-job]", panel);
  box.dataset.poolStatus = job.status;
  renderSteps($("[data-pool-steps]", box), job, {});
  const outcome = $("[data-pool-outcome]", box);
  outcome.hidden = !job.outcome;
  setText(outcome, job.outcome ? `${job.status === "done" ? "Done" : "Failed"}: ${job.outcome}` : "");
}

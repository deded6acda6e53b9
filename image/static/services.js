// Services panel: one card per service from GET /api/services (cached by the
// server, so polling it never reaches Spark 2), with start/stop/restart/deep check.

import { fetchJSON, isUnauthorized, HOST_CHANGED } from "./api.js";
import { $, ago, bytes, confirmAction, el, fullTime, pill, poll, setText, showMessage,
         updatePill } from "./ui.js";

export const STATE = {
  healthy: ["Healthy", "ok"],
  starting: ["Starting", "busy"],
  restarting: ["Restarting", "busy"],
  unhealthy: ["Unhealthy", "bad"],
  stopped: ["Stopped", "off"],
  oom_killed: ["Out of memory", "bad"],
  missing: ["Missing", "bad"],
  unreachable: ["Unreachable", "bad"],
  unknown: ["Unknown", "off"],
};
const VERDICT = { ok: "OK", failed: "Failed", rejected: "Rejected", busy: "Busy (deferred)" };
const TRANSITIONAL = new Set(["starting", "restarting", "unknown"]);
const NORMAL_MS = 5000;
const FAST_MS = 2000; // while something is changing, so a start shows up promptly

const cards = new Map(); // service name → {root, fields…}
const pending = new Map(); // service name → action sent from this page
let latest = null;
let poller = null;

export function startServices() {
  poller = poll(refresh, () => (isSettling() ? FAST_MS : NORMAL_MS));
  window.addEventListener(HOST_CHANGED, () => poller.now());
}

// Notes other panels pin on a service's card (the speech-server panel's "Upgrade
// available"): kept here so a card re-rendered by the next poll still shows them.
const badges = new Map();

export function setServiceBadge(name, badge) {
  if (badge) badges.set(name, badge); else badges.delete(name);
  const card = cards.get(name);
  if (card) renderBadge(card.badge, badge);
}

function renderBadge(node, badge) {
  node.hidden = !badge;
  node.title = badge?.title ?? "";
  node.replaceChildren(...(badge ? [pill(badge.label, badge.tone)] : []));
}

export function refreshServices() {
  poller?.now();
}

function isSettling() {
  return pending.size > 0 || (latest?.services ?? []).some(
    (s) => s.action || TRANSITIONAL.has(s.state));
}

async function refresh() {
  const banner = $("[data-banner]");
  try {
    latest = await fetchJSON("/api/services");
    showMessage(banner, "");
  } catch (err) {
    if (!isUnauthorized(err)) showMessage(banner, `Cannot load the services: ${err.message}`, "error");
    return;
  }
  renderHost(latest.spark2, latest.mode);
  renderCards(latest.services);
}

// -- header: Spark 2 reachability -----------------------------------------------

function renderHost(host, mode) {
  const node = $("[data-host]");
  let label;
  let tone;
  const local = mode === "local";
  if (mode === "external") [label, tone] = ["No Spark: services reached by URL", "off"];
  else if (!host.host) [label, tone] = ["No Spark configured", "off"];
  else if (local) [label, tone] = ["Local mode: speech server on this machine", "off"];
  else if (host.reachable === true) [label, tone] = [`Spark 2 (${host.host}) reachable`, "ok"];
  else if (host.reachable === false) [label, tone] = [`Spark 2 (${host.host}) unreachable`, "bad"];
  else [label, tone] = [`Spark 2 (${host.host}): waiting for the first poll`, "off"];
  updatePill(node, label, tone);
  node.dataset.reachable = String(host.reachable);
  node.dataset.mode = mode;
  node.title = host.detail || "";
  const checked = $("[data-checked]");
  setText(checked, host.checked_at ? `updated ${ago(host.checked_at)}` : "");
  checked.title = fullTime(host.checked_at);
}

// -- cards ----------------------------------------------------------------------

function renderCards(services) {
  const grid = $("[data-services]");
  const names = new Set(services.map((s) => s.name));
  for (const [name, card] of cards) {
    if (!names.has(name)) { card.root.remove(); cards.delete(name); }
  }
  for (const svc of services) {
    if (!cards.has(svc.name)) {
      const card = buildCard(svc.name);
      cards.set(svc.name, card);
      grid.append(card.root);
    }
    updateCard(cards.get(svc.name), svc);
  }
  $("[data-services-empty]").hidden = services.length > 0;
}

function buildCard(name) {
  const f = {};
  const field = (label, key) => [el("dt", {}, label), f[key] = el("dd", { dataset: { field: key } })];
  const button = (action, label, cls = "btn") => f[action] = el("button", {
    type: "button", class: cls, dataset: { action }, onclick: () => act(name, action) }, label);
  f.root = el("article", { class: "card service", dataset: { service: name },
                           "aria-labelledby": `svc-${name}` },
    el("header", { class: "card-head" },
      el("h3", { id: `svc-${name}` }, name),
      f.pill = pill("Unknown", "off", { dataset: { pill: "" } })),
    f.badge = el("p", { class: "badge", hidden: true, dataset: { badge: "" } }),
    f.where = el("p", { class: "muted where" }),
    f.detail = el("p", { class: "state-detail" }),
    el("dl", { class: "facts" },
      field("Models", "models"), field("Memory", "memory"),
      field("Restarts", "restarts"), field("Deep check", "deep_check")),
    el("div", { class: "actions" },
      button("start", "Start"), button("restart", "Restart"),
      button("stop", "Stop", "btn btn-danger"), button("deep-check", "Deep check")),
    f.message = el("p", { class: "message", hidden: true, dataset: { message: "" } }),
    f.history = el("details", { class: "history" },
      el("summary", {}, "Recent actions"), f.historyList = el("ul")));
  return f;
}

function updateCard(f, svc) {
  const [label, tone] = STATE[svc.state] ?? [svc.state, "off"];
  const busy = pending.get(svc.name);
  f.root.dataset.state = svc.state;
  updatePill(f.pill, busy ? `${label} · ${busy}…` : label, tone);
  f.pill.dataset.state = svc.state;
  const where = { local: `process ${svc.container_name}`, external: "by URL only" };
  setText(f.where, `${hostPort(svc.url)} · ${where[latest?.mode] ?? `container ${svc.container_name}`}`);
  setText(f.detail, svc.action
    ? `${svc.action.action} in progress (by ${svc.action.by}, started ${ago(svc.action.started_at)})`
    : svc.state_detail);
  renderModels(f.models, svc);
  renderMemory(f.memory, svc.memory);
  setText(f.restarts, restartsText(svc));
  renderDeepCheck(f.deep_check, svc.deep_check);
  const allowed = allowedActions(svc, busy);
  for (const action of ["start", "restart", "stop", "deep-check"]) {
    f[action].disabled = !allowed[action];
  }
  renderHistory(f.historyList, svc.history);
  f.history.hidden = svc.history.length === 0;
  renderBadge(f.badge, badges.get(svc.name));
}

function hostPort(url) {
  try { return new URL(url).host; } catch { return url; }
}

function renderModels(node, svc) {
  const names = svc.models.length ? svc.models : null;
  const key = names ? names.join("|") : "";
  if (node.dataset.key === key && node.childNodes.length) return;
  node.dataset.key = key;
  node.replaceChildren(...(names
    ? names.map((m) => el("span", { class: "chip", title: m }, m))
    : [el("span", { class: "muted" }, "none reported")]));
}

function renderMemory(node, mem) {
  const cap = mem.cap_bytes ?? mem.limit_bytes;
  let text = `${bytes(mem.usage_bytes)} / ${cap ? bytes(cap) : "no cap"}`;
  if (mem.cap_error) text += ` — ${mem.cap_error}`;
  else if (mem.cap_bytes && !mem.cap_enforced) text += " (cap not enforced yet)";
  setText(node, text);
  node.classList.toggle("warn", Boolean(mem.cap_error));
}

function restartsText(svc) {
  const auto = svc.auto_restart_limit
    ? ` · automatic: ${svc.auto_restarts_in_window} of ${svc.auto_restart_limit} allowed per ${minutes(svc.auto_restart_window_s)}`
    : " · automatic restarts off";
  return `${svc.restart_count}${auto}`;
}

function renderDeepCheck(node, check) {
  if (!check) { setText(node, "not run yet"); node.title = ""; node.dataset.verdict = ""; return; }
  const latency = check.latency_ms != null ? ` · ${Math.round(check.latency_ms)} ms` : "";
  setText(node, `${VERDICT[check.verdict] ?? check.verdict} · ${ago(check.at)}${latency}`);
  node.title = `${check.detail} (${fullTime(check.at)})`;
  node.dataset.verdict = check.verdict;
}

function renderHistory(list, history) {
  const recent = history.slice(-5).reverse();
  const key = recent.map((r) => `${r.at}${r.outcome}`).join("|");
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...recent.map((r) => el("li", { title: fullTime(r.at) },
    `${r.action} by ${r.by} ${ago(r.at)}: ${r.reason} — ${r.outcome}`)));
}

// Which buttons make sense now. Nothing is allowed while an action holds the
// service (ours or anyone's, e.g. a speech-model job) or while docker cannot be read.
// A service known by its URL alone (no container host) can only be deep-checked.
export function allowedActions(svc, busy) {
  const blocked = busy || svc.action ||
    ["unknown", "unreachable", "missing"].includes(svc.state);
  const hosted = latest?.mode !== "external";
  const running = Boolean(svc.container?.running);
  return {
    start: !blocked && hosted && !running,
    stop: !blocked && hosted && running,
    restart: !blocked && hosted && Boolean(svc.container),
    "deep-check": !blocked && (running || !hosted),
  };
}

// -- actions --------------------------------------------------------------------

const CONFIRM = {
  stop: (name) => ({
    title: `Stop ${name}?`,
    body: `${name} stops answering until someone starts it again. The watchdog does ` +
          "not restart a service stopped from here.",
    confirm: "Stop", danger: true }),
  restart: (name) => ({
    title: `Restart ${name}?`,
    body: `Requests running on ${name} are cut off, and it is unavailable until its ` +
          "models have loaded again.",
    confirm: "Restart", danger: true }),
};

async function act(name, action) {
  const card = cards.get(name);
  if (CONFIRM[action] && !(await confirmAction(CONFIRM[action](name)))) return;
  pending.set(name, action === "deep-check" ? "deep check" : action);
  rerender(name);
  showMessage(card.message, `${action === "deep-check" ? "Deep check" : capital(action)} of ${name} sent…`);
  try {
    const path = `/api/services/${encodeURIComponent(name)}/${action}`;
    const answer = await fetchJSON(path, { method: "POST" });
    showMessage(card.message, outcomeText(name, action, answer),
                action === "deep-check" && !["ok", "busy"].includes(answer.result.verdict) ? "error" : "ok");
    replaceService(answer.service);
  } catch (err) {
    showMessage(card.message, `${capital(action)} failed: ${err.message}`, "error");
  } finally {
    pending.delete(name);
    rerender(name);
    refreshServices();
  }
}

function outcomeText(name, action, answer) {
  if (action !== "deep-check") return `${capital(action)} of ${name}: ${answer.record.outcome}.`;
  const r = answer.result;
  let text = `Deep check ${VERDICT[r.verdict] ?? r.verdict}: ${r.detail} (${Math.round(r.latency_ms)} ms).`;
  if (answer.auto_restart) text += ` Restarted by the watchdog: ${answer.auto_restart.outcome}.`;
  return text;
}

function replaceService(svc) {
  if (!latest) return;
  latest.services = latest.services.map((s) => (s.name === svc.name ? svc : s));
}

function rerender(name) {
  const svc = latest?.services.find((s) => s.name === name);
  if (svc) updateCard(cards.get(name), svc);
}

function capital(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function minutes(seconds) {
  return seconds >= 3600 && seconds % 3600 === 0 ? `${seconds / 3600} h` : `${Math.round(seconds / 60)} min`;
}

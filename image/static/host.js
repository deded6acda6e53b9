// Host panel: Spark 2's memory, swap, GPU and disk from GET /api/host (one cached
// server-side poll for every dashboard), sparklines of the last hour from
// /api/host/history (the last hour or 24 h), warnings in words, and the Docker prune action.

import { fetchJSON, isUnauthorized, HOST_CHANGED } from "./api.js";
import { $, ago, bytes, confirmAction, el, fullTime, poll, setText, showMessage } from "./ui.js";

const HISTORY_EVERY = 3; // polls: the sparklines move slowly, the figures do not
const SVG = "http://www.w3.org/2000/svg";
let polls = 0;
let history = [];
let minutes = 60; // of history in the sparklines
let poller = null;

export function startHost() {
  $('[data-action="prune"]').addEventListener("click", prune);
  for (const button of document.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => showRange(Number(button.dataset.range)));
  }
  poller = poll(refresh, () => 5000);
  window.addEventListener(HOST_CHANGED, () => { polls = 0; history = []; poller.now(); });
}

function showRange(chosen) {
  minutes = chosen;
  for (const button of document.querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.range) === chosen));
  }
  polls = 0; // fetch the history for the new range at once
  poller.now();
}

async function refresh() {
  let now;
  try {
    now = await fetchJSON("/api/host");
    if (polls++ % HISTORY_EVERY === 0) {
      history = (await fetchJSON(`/api/host/history?minutes=${minutes}&points=120`)).points;
    }
  } catch (err) {
    if (!isUnauthorized(err)) showMessage($("[data-host-message]"), `Cannot load the host figures: ${err.message}`, "error");
    return;
  }
  render(now);
}

function render(now) {
  const panel = $('[data-panel="host"]');
  panel.hidden = now.source === "none";
  if (panel.hidden) return;
  setText($("#host-title"), now.source === "local" ? "This machine" : "Spark 2 host");
  const checked = $("[data-host-checked]");
  setText(checked, now.checked_at ? `read ${ago(now.checked_at)}` : "not read yet");
  checked.title = fullTime(now.checked_at);
  panel.dataset.reachable = String(now.reachable);
  const message = $("[data-host-message]");
  if (now.reachable === false) showMessage(message, `Cannot read the host: ${now.error}`, "error");
  else showMessage(message, "");
  renderWarnings(now.warnings);
  renderGauges(now.snapshot);
  renderDockerDisk(now);
}

function renderWarnings(warnings) {
  const list = $("[data-host-warnings]");
  list.hidden = warnings.length === 0;
  list.replaceChildren(...warnings.map((w) => el("li", { dataset: { warning: w.kind } },
    el("strong", {}, "Warning: "), w.message, el("span", { class: "muted" }, ` (since ${ago(w.since)})`))));
}

function renderGauges(snap) {
  const box = $("[data-gauges]");
  if (!snap) { box.replaceChildren(); return; }
  const mem = snap.memory;
  const used = mem.total_bytes - mem.available_bytes;
  const gauges = [
    gauge("memory", "Memory", used / mem.total_bytes,
      `${bytes(used)} of ${bytes(mem.total_bytes)} used (${pct(used / mem.total_bytes)})`,
      series("memory_used_pct")),
    gauge("swap", "Swap", mem.swap_total_bytes ? mem.swap_used_bytes / mem.swap_total_bytes : null,
      mem.swap_total_bytes ? `${bytes(mem.swap_used_bytes)} of ${bytes(mem.swap_total_bytes)} in use`
        : "no swap configured", mem.swap_total_bytes ? series("swap_used_bytes") : []),
    ...snap.gpus.map((gpu, i) => gauge(`gpu-${i}`, gpu.name || "GPU",
      gpu.utilization_pct === null ? null : gpu.utilization_pct / 100, gpuText(gpu),
      i === 0 ? series("gpu_util_pct") : [])),
    ...snap.disks.map((d) => gauge(`disk:${d.path}`, `Disk ${d.path}`, d.used_bytes / d.total_bytes,
      `${pct(d.used_bytes / d.total_bytes)} full, ${bytes(d.available_bytes)} free`,
      [])),
  ];
  if (!snap.gpus.length) gauges.splice(2, 0, gauge("gpu", "GPU", null, snap.gpu_detail, []));
  box.replaceChildren(...gauges);
}

function gpuText(gpu) {
  const parts = [
    gpu.utilization_pct === null ? "utilisation not reported" : `${gpu.utilization_pct}% busy`,
    gpu.temperature_c === null ? "temperature not reported" : `${gpu.temperature_c} °C`,
    gpu.power_w === null ? "power not reported" : `${gpu.power_w.toFixed(1)} W`,
  ];
  if (gpu.memory_total_bytes !== null) parts.push(`${bytes(gpu.memory_used_bytes)} of ${bytes(gpu.memory_total_bytes)}`);
  return parts.join(" · ");
}

// One figure: its name and value in words, a bar (when there is a fraction), a sparkline.
function gauge(key, label, fraction, text, points) {
  const level = fraction === null ? "none" : fraction >= 0.9 ? "high" : fraction >= 0.75 ? "mid" : "low";
  const bar = fraction === null ? null
    : el("div", { class: "bar", role: "img", "aria-label": `${label}: ${pct(fraction)}` },
      el("span", { class: "bar-fill", style: { "--fill": `${Math.min(100, fraction * 100)}%` } }));
  return el("div", { class: "gauge", dataset: { gauge: key, level } },
    el("div", { class: "gauge-head" }, el("span", { class: "gauge-label" }, label),
      el("span", { class: "gauge-value", dataset: { value: "" } }, text)),
    bar, points.length > 1 ? sparkline(points, label) : null);
}

function series(column) {
  return history.map((p) => p[column]).filter((v) => v !== null && v !== undefined);
}

function sparkline(values, label) {
  const w = 240;
  const h = 28;
  const max = Math.max(...values, 1e-9);
  const min = Math.min(...values, 0);
  const step = w / (values.length - 1);
  const coords = values.map((v, i) => `${(i * step).toFixed(1)},${(h - ((v - min) / (max - min || 1)) * (h - 2) - 1).toFixed(1)}`);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label}, ${minutes === 60 ? "last hour" : "last 24 h"}`);
  svg.dataset.spark = "";
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", coords.join(" "));
  svg.append(line);
  return svg;
}

function renderDockerDisk(now) {
  const box = $("[data-docker-disk]");
  box.hidden = !now.docker_disk && !now.docker_disk_error;
  if (box.hidden) return;
  if (now.docker_disk_error) { setText($("[data-docker-disk-text]"), `Docker disk use unknown: ${now.docker_disk_error}`); return; }
  const rows = now.docker_disk;
  const total = rows.reduce((sum, r) => sum + r.size_bytes, 0);
  const free = rows.filter((r) => r.kind === "Images" || r.kind === "Build Cache")
    .reduce((sum, r) => sum + r.reclaimable_bytes, 0);
  setText($("[data-docker-disk-text]"),
    `Docker holds ${bytes(total)}; ${bytes(free)} of images and build cache is not in use.`);
}

async function prune() {
  const ok = await confirmAction({
    title: "Prune Docker on Spark 2?",
    body: "Removes dangling images (untagged layers left by rebuilds) and the build cache. " +
      "Tagged images, containers and volumes are kept.",
    confirm: "Prune", danger: true,
  });
  if (!ok) return;
  const message = $("[data-prune-message]");
  const button = $('[data-action="prune"]');
  button.disabled = true;
  showMessage(message, "Pruning…");
  try {
    const result = await fetchJSON("/api/host/docker-prune", { method: "POST" });
    showMessage(message, `Pruned: ${result.detail}; ${bytes(result.reclaimed_bytes)} freed.`);
  } catch (err) {
    showMessage(message, `Prune failed: ${err.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

function pct(fraction) {
  return `${Math.round(fraction * 100)}%`;
}

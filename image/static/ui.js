// Small DOM and formatting helpers shared by the panels.

// el("button", {class: "btn", dataset: {action: "stop"}, onclick}, "Stop")
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") {
      // setProperty, not assignment: custom properties (--spk) need it
      for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, v);
    }
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

// Set text only when it changed, so screen readers and selections are not disturbed.
export function setText(node, text) {
  const value = text ?? "";
  if (node.textContent !== value) node.textContent = value;
}

// A status pill: a coloured dot plus a text label (colour is never the only cue).
export function pill(label, tone, attrs = {}) {
  return el("span", { class: `pill tone-${tone}`, ...attrs },
    el("span", { class: "dot", "aria-hidden": "true" }), el("span", { class: "label" }, label));
}

export function updatePill(node, label, tone) {
  node.className = `pill tone-${tone}`;
  setText(node.querySelector(".label"), label);
}

// An inline message under a panel or card; kind "error" is announced immediately.
export function showMessage(node, text, kind = "info") {
  node.hidden = !text;
  node.className = `message message-${kind}`;
  node.setAttribute("role", kind === "error" ? "alert" : "status");
  setText(node, text || "");
}

// -- formatting ---------------------------------------------------------------

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let value = n;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value >= 10 || i === 0 ? Math.round(value) : value.toFixed(1)} ${units[i]}`;
}

export function seconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// Unix seconds → "12 s ago" / "3 min ago"; the full time goes in a title.
export function ago(unix) {
  if (!unix) return "never";
  const diff = Math.max(0, Date.now() / 1000 - unix);
  if (diff < 5) return "just now";
  if (diff < 60) return `${Math.round(diff)} s ago`;
  if (diff < 3600) return `${Math.round(diff / 60)} min ago`;
  if (diff < 86400) return `${Math.round(diff / 3600)} h ago`;
  return new Date(unix * 1000).toLocaleDateString();
}

export function fullTime(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "";
}

// Milliseconds → "1:02:03.4" or "02:03.4" (audio positions).
export function clock(ms) {
  const total = Math.max(0, ms) / 1000;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = (total % 60).toFixed(1).padStart(4, "0");
  const mm = String(m).padStart(2, "0");
  return h ? `${h}:${mm}:${s}` : `${mm}:${s}`;
}

// -- confirmation -------------------------------------------------------------

// Ask before anything disruptive, with the native <dialog> in index.html.
// Resolves true only when the person picked the confirm button.
export function confirmAction({ title, body, confirm, danger = false }) {
  const dialog = $("#confirm");
  setText($("[data-confirm-title]", dialog), title);
  setText($("[data-confirm-body]", dialog), body);
  const ok = $('[data-action="confirm"]', dialog);
  setText(ok, confirm);
  ok.className = danger ? "btn btn-danger" : "btn btn-primary";
  dialog.returnValue = "";
  dialog.showModal();
  $('[data-action="cancel"]', dialog).focus(); // the safe choice has the focus
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

// -- polling ------------------------------------------------------------------

// Call task() now and then every interval() ms after it finishes (never two at
// once), paused while the tab is hidden and resumed at once when it is shown.
export function poll(task, interval) {
  let timer = null;
  let running = false;
  let again = false;
  async function tick() {
    clearTimeout(timer);
    timer = null;
    if (document.hidden) return;
    if (running) { again = true; return; }
    running = true;
    try {
      await task();
    } finally {
      running = false;
      if (again) { again = false; tick(); } else schedule();
    }
  }
  function schedule() {
    if (!document.hidden) timer = setTimeout(tick, interval());
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { clearTimeout(timer); timer = null; } else tick();
  });
  tick();
  return { now: tick };
}

// Copy to the clipboard; the async Clipboard API needs a secure context, which a
// plain-http LAN page is not, so fall back to a hidden textarea.
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = el("textarea", { class: "visually-hidden", readonly: true }, text);
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

// Every request the dashboard makes goes through this module, so adding auth
// (a session cookie, a CSRF header) later changes this file only.
// URLs are relative: the dashboard is served by the API it talks to.

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: spark-control could not be reached at all
    this.body = body;
  }
}

const BASE_HEADERS = { Accept: "application/json" };

// The speech host whose pages the per-host panels show (the Hosts panel's tabs):
// those URLs get ?host=NAME here, so the panels need not know about the pool.
let scopedHost = null; // null: the first host (the server's default)
const PER_HOST = /^\/api\/(services|host|speech-models|speech-server)(\/|\?|$)/;
export const HOST_CHANGED = "spark-control:host";

export function currentHost() {
  return scopedHost;
}

export function setHost(name) {
  if (name === scopedHost) return;
  scopedHost = name;
  window.dispatchEvent(new CustomEvent(HOST_CHANGED, { detail: name }));
}

function scoped(path) {
  if (!scopedHost || !PER_HOST.test(path)) return path;
  return `${path}${path.includes("?") ? "&" : "?"}host=${encodeURIComponent(scopedHost)}`;
}

// fetch() with our credentials policy; throws ApiError on a non-2xx answer.
export async function api(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  const init = { method, credentials: "same-origin", signal,
                 headers: { ...BASE_HEADERS, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(scoped(path), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `spark-control did not answer (${err.message})`);
  }
  if (!response.ok) {
    throw errorFrom(response.status, response.statusText, await response.text());
  }
  return response;
}

// 401 from anywhere: the page shows its sign-in form (see app.js) instead of errors.
export const UNAUTHORIZED = "spark-control:unauthorized";

export function isUnauthorized(err) {
  return err?.status === 401;
}

// Trade the access token for the session cookie (POST /login, form-encoded).
export async function login(token) {
  await api("/login", { method: "POST", body: new URLSearchParams({ token }) });
}

export async function logout() {
  await api("/logout", { method: "POST" });
}

export async function fetchJSON(path, options) {
  const response = await api(path, options);
  return response.status === 204 ? null : response.json();
}

// Multipart upload with progress: fetch() cannot report upload progress, XHR can.
// onProgress(fraction 0..1) is called while the body is sent.
export function upload(path, formData, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.withCredentials = false; // cookies for same-origin only, as credentials: "same-origin"
    for (const [name, value] of Object.entries(BASE_HEADERS)) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        try {
          resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null);
        } catch {
          reject(new ApiError(xhr.status, "spark-control answered something that is not JSON"));
        }
      } else {
        reject(errorFrom(xhr.status, xhr.statusText, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the upload was interrupted: spark-control did not answer")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "the upload was cancelled")));
    xhr.send(formData);
  });
}

// Server-sent events read through fetch (not EventSource) so they share api()'s
// credentials and headers. Calls onEvent({event, data, id}) per event and resolves
// when the server ends the stream. Throws ApiError if the stream cannot be opened.
export async function streamEvents(path, onEvent, { signal } = {}) {
  const response = await api(path, { headers: { Accept: "text/event-stream" }, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let current = { event: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop(); // the last piece may be an incomplete line
    for (const line of lines) {
      if (line === "") {
        if (current.data.length) {
          onEvent({ event: current.event, data: current.data.join("\n"), id: current.id });
        }
        current = { event: "message", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue; // keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") current.event = val;
      else if (field === "data") current.data.push(val);
      else if (field === "id") current.id = val;
    }
  }
}

// Follow a job's stream until one of `finals` arrives. Both job streams replay
// everything from the start and every event carries the whole job, so after a
// dropped connection we simply reconnect and redraw. Resolves with the last event.
export async function followJob(path, onEvent, finals, { signal } = {}) {
  let last = null;
  let failures = 0;
  while (!signal?.aborted) {
    try {
      await streamEvents(path, (ev) => { last = ev; failures = 0; onEvent(ev); }, { signal });
    } catch (err) {
      if (err.name === "AbortError") break;
      // 404: the job is gone (spark-control restarted); retrying cannot help.
      if (err.status && err.status < 500) throw err;
      if (++failures > 5) throw err;
    }
    if (last && finals.includes(last.event)) return last;
    await sleep(Math.min(1000 * 2 ** failures, 10000), signal);
  }
  return last;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// A sentence a person can read from any error answer: FastAPI's {"detail": str},
// validation errors (detail is a list), or a proxy's HTML page.
export function errorFrom(status, statusText, text) {
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  if (status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED));
  return new ApiError(status, describe(status, statusText, body, text), body);
}

function describe(status, statusText, body, text) {
  const detail = body && typeof body === "object" ? body.detail : undefined;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body" && p !== "query").join(".") : "";
      return where ? `${where}: ${d.msg}` : String(d.msg ?? JSON.stringify(d));
    }).join("; ");
  }
  const plain = (text || "").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
  const head = `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
  return plain && plain.length < 200 && !plain.startsWith("{") ? `${head}: ${plain}` : head;
}

// Audio panel: upload a recording, follow its job (SSE), then show the speaker
// blocks with a timeline, a player and downloads. Speakers whose voice matches a
// known speaker (speakers.js) carry that name in the result as the server serves it;
// any other speaker can be saved as a known speaker from here, and one whose voice
// nearly matches someone (`suggested`) can be confirmed as that person in one press.

import { api, fetchJSON, followJob, upload } from "./api.js";
import { enrollTarget, refreshSpeakers, SPEAKERS_EVENT } from "./speakers.js";
import { $, ago, clock, confirmAction, el, fullTime, pill, poll, seconds, setText,
         showMessage, updatePill } from "./ui.js";

const STATUS = {
  queued: ["Queued", "off"],
  running: ["Running", "busy"],
  done: ["Done", "ok"],
  failed: ["Failed", "bad"],
  cancelled: ["Cancelled", "off"],
};
const FINAL = ["done", "failed", "cancelled"];
const FORMATS = ["json", "srt", "vtt", "rttm", "txt"];
const PALETTE_SIZE = 8; // --spk-0 … --spk-7 in style.css
const JOB_KEY = "spark-control.audio-job";
const LIST_MS = 15000; // the job list is spark-control's own database, not the Spark

let panel;
let currentId = null; // the job shown
let controller = null; // aborts the stream of a job no longer shown
let view = null; // {job, result, entries: [{label, name, score, suggested, key}], speakers, blocks: [{seg, item}]}
const audioUrls = new Map(); // job id → object URL of the file uploaded from this tab
let listPoller = null;

export function startAudio() {
  panel = $('[data-panel="audio"]');
  const input = $("[data-audio-input]", panel);
  input.addEventListener("change", () => {
    const file = input.files[0];
    input.value = ""; // choosing the same file again still fires "change"
    if (file) submit(file);
  });
  setUpDropzone($("[data-dropzone]", panel));
  $('[data-action="cancel-audio"]', panel).addEventListener("click", cancelCurrent);
  const player = $("[data-player]", panel);
  player.addEventListener("timeupdate", () => highlight(player.currentTime * 1000));
  $("[data-timeline]", panel).addEventListener("click", seekFromTimeline);
  // A rename, deletion or enrollment in the Known speakers panel changes the names the
  // server puts in results: fetch the one shown again.
  window.addEventListener(SPEAKERS_EVENT, (e) => {
    if (e.detail.changed && view) loadResult(view.job);
  });
  resumeStoredJob();
  listPoller = poll(refreshList, () => LIST_MS);
}

function setUpDropzone(zone) {
  const on = (e) => { e.preventDefault(); zone.classList.add("dragging"); };
  const off = () => zone.classList.remove("dragging");
  zone.addEventListener("dragenter", on);
  zone.addEventListener("dragover", on);
  zone.addEventListener("dragleave", off);
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    off();
    const file = e.dataTransfer?.files?.[0];
    if (file) submit(file);
  });
}

function message(text, kind = "info") {
  showMessage($("[data-audio-message]", panel), text, kind);
}

function enrollMessage(text, kind = "info") {
  showMessage($("[data-enroll-message]", panel), text, kind);
}

// -- upload and the job's progress ----------------------------------------------

async function submit(file) {
  const input = $("[data-audio-input]", panel);
  if (input.disabled) return; // one upload at a time from this page (a drop can still arrive)
  forget();
  message("");
  const box = $("[data-upload]", panel);
  const bar = $("[data-upload-progress]", panel);
  box.hidden = false;
  input.disabled = true;
  setText($("[data-upload-name]", panel), `Uploading ${file.name}`);
  const progress = (fraction) => {
    bar.value = Math.round(fraction * 100);
    setText($("[data-upload-percent]", panel), `${Math.round(fraction * 100)} %`);
    // The answer comes once the server has probed the whole file with ffprobe.
    if (fraction >= 1) setText($("[data-upload-name]", panel), `${file.name} uploaded; checking it…`);
  };
  progress(0);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const job = await upload("/api/audio/jobs", form, progress);
    audioUrls.set(job.id, URL.createObjectURL(file));
    show(job);
  } catch (err) {
    message(`${file.name} was not accepted: ${err.message}`, "error");
  } finally {
    box.hidden = true;
    input.disabled = false;
    listPoller.now();
  }
}

// Stop following whatever was shown and clear the view.
function forget() {
  controller?.abort();
  controller = null;
  currentId = null;
  view = null;
  enrollMessage("");
  $("[data-audio-job]", panel).hidden = true;
  $("[data-result]", panel).hidden = true;
  $("[data-player]", panel).removeAttribute("src");
}

async function show(job) {
  forget();
  const id = job.id;
  currentId = id;
  sessionStorage.setItem(JOB_KEY, id);
  renderJob(job);
  let last = job;
  if (!FINAL.includes(job.status)) {
    controller = new AbortController();
    try {
      await followJob(`/api/audio/jobs/${encodeURIComponent(id)}/events`, (ev) => {
        if (currentId !== id) return;
        last = JSON.parse(ev.data);
        renderJob(last);
      }, FINAL, { signal: controller.signal });
    } catch (err) {
      if (err.name !== "AbortError" && currentId === id) {
        message(`Lost the job's progress: ${err.message}`, "error");
      }
      return;
    }
    if (currentId !== id) return;
    listPoller.now();
    if (last.status === "done") refreshSpeakers(); // the embedding model is known by now
  }
  if (last.status === "done") await loadResult(last);
}

function renderJob(job) {
  const box = $("[data-audio-job]", panel);
  box.hidden = false;
  box.dataset.audioStatus = job.status;
  box.dataset.audioJob = job.id;
  setText($("[data-audio-filename]", box), job.filename);
  const [label, tone] = STATUS[job.status] ?? [job.status, "off"];
  updatePill($("[data-audio-status]", box), label, tone);
  setText($("[data-audio-stage]", box), stageText(job));
  const hosts = $("[data-audio-hosts]", box);
  hosts.hidden = !job.hosts?.length;
  setText(hosts, hostsText(job.hosts ?? []));
  const bar = $("[data-audio-progress]", box);
  bar.hidden = FINAL.includes(job.status);
  bar.value = job.status === "queued" ? 0 : job.percent;
  setText($("[data-audio-percent]", box), bar.hidden ? "" : `${Math.round(job.percent)} %`);
  $('[data-action="cancel-audio"]', box).hidden = FINAL.includes(job.status);
  if (job.status === "failed") message(`Transcription of ${job.filename} failed: ${job.error || "no reason given"}`, "error");
}

// Where the chunks ran: "Ran on spark2 (chunks 1, 3), spark1 (chunk 2) · chunk 2
// moved from spark1" (a pool of hosts; chunk 1 is the whole of a short recording).
function hostsText(places) {
  const by = new Map();
  for (const p of places) by.set(p.host, [...(by.get(p.host) ?? []), p.chunk + 1]);
  const ran = [...by].map(([host, chunks]) =>
    `${host} (chunk${chunks.length > 1 ? "s" : ""} ${chunks.join(", ")})`).join(", ");
  const moved = places.filter((p) => p.failed_on.length)
    .map((p) => `chunk ${p.chunk + 1} moved from ${p.failed_on.join(", ")}`);
  return [`Ran on ${ran}`, ...moved].join(" · ");
}

function stageText(job) {
  const length = job.duration ? ` · ${clock(job.duration * 1000)} of audio` : "";
  switch (job.status) {
    case "queued": return `Waiting for the speech server${length}`;
    case "running": {
      // `chunk` counts finished chunks: while transcribing, the next one is in work.
      const working = job.stage === "transcribing" && job.chunks > 1;
      const chunk = working ? ` · chunk ${Math.min(job.chunk + 1, job.chunks)} of ${job.chunks}` : "";
      return `${capital(job.stage || "working")}${chunk}${length}`;
    }
    case "done": {
      const took = job.started_at && job.finished_at ? ` in ${seconds(job.finished_at - job.started_at)}` : "";
      return `Finished${took}${length}`;
    }
    case "failed": return job.error || "Failed";
    default: return "Cancelled";
  }
}

async function cancelCurrent() {
  const id = currentId;
  if (!id) return;
  const name = $("[data-audio-filename]", panel).textContent;
  const ok = await confirmAction({ title: `Cancel ${name}?`,
    body: "The transcription stops and its partial work is thrown away.",
    confirm: "Cancel transcription", danger: true });
  if (!ok) return;
  try {
    await api(`/api/audio/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    message(`Cancel failed: ${err.message}`, "error");
  }
  listPoller.now();
}

async function resumeStoredJob() {
  const id = sessionStorage.getItem(JOB_KEY);
  if (!id) return;
  try {
    show(await fetchJSON(`/api/audio/jobs/${encodeURIComponent(id)}`));
  } catch {
    sessionStorage.removeItem(JOB_KEY); // removed, or spark-control forgot it
  }
}

// -- the result -----------------------------------------------------------------

// Also called again to show names changed since (the server names speakers when it
// serves a result); it redraws in place, the player keeps its position.
async function loadResult(job) {
  let result;
  try {
    result = await fetchJSON(`/api/audio/jobs/${encodeURIComponent(job.id)}/result?format=json`);
  } catch (err) {
    message(`Cannot load the result: ${err.message}`, "error");
    return;
  }
  if (currentId !== job.id) return;
  const entries = speakersOf(result);
  view = { job, result, entries, speakers: entries.map((e) => e.key), blocks: [] };
  renderMeta(result);
  renderPlayer(job.id);
  renderSpeakers();
  renderTimeline();
  renderDownloads(job);
  renderBlocks();
  $("[data-result]", panel).hidden = false;
  const player = $("[data-player]", panel);
  if (!player.hidden && player.currentTime > 0) highlight(player.currentTime * 1000);
}

// The speakers heard, in order: {label (Speaker_N), name and score when the voice
// matched a known speaker, suggested: {name, score, same_as} when it nearly matched
// one (never with a name), key: what the segments call them (the name, or the label)}.
// Results without `speakers` (matching off) fall back to the segments' labels.
function speakersOf(result) {
  const heard = new Set(result.segments.map((s) => s.speaker));
  const entries = (result.speakers ?? []).map((s) => ({ label: s.label, name: s.name ?? null,
    score: s.score ?? null, suggested: s.name ? null : s.suggested ?? null, key: s.name || s.label }))
    .filter((e) => heard.has(e.key));
  for (const spk of heard) {
    if (!entries.some((e) => e.key === spk)) {
      entries.push({ label: spk, name: null, score: null, suggested: null, key: spk });
    }
  }
  return entries;
}

function renderMeta(r) {
  const parts = [`${clock(r.duration * 1000)} of audio`, r.language,
    `${r.speakers_detected} speaker${r.speakers_detected === 1 ? "" : "s"}`,
    `${r.segments.length} block${r.segments.length === 1 ? "" : "s"}`];
  if (r.chunks > 1) parts.push(`${r.chunks} chunks`);
  if (view.job.expires_at) parts.push(`kept until ${new Date(view.job.expires_at * 1000).toLocaleString()}`);
  setText($("[data-result-meta]", panel), parts.join(" · "));
  setText($("[data-result-models]", panel),
    `Models: ${r.models.transcription} (transcription), ${r.models.diarization} (speakers)`);
}

function renderPlayer(id) {
  const player = $("[data-player]", panel);
  const url = audioUrls.get(id);
  player.hidden = !url;
  $("[data-player-note]", panel).hidden = Boolean(url);
  if (url && player.src !== url) player.src = url; // a redraw must not restart playback
}

function colour(speaker) {
  return `var(--spk-${view.speakers.indexOf(speaker) % PALETTE_SIZE})`;
}

function entryOf(key) {
  return view.entries.find((e) => e.key === key);
}

function matchTitle(entry) {
  const score = entry.score === null ? "" : ` (score ${entry.score.toFixed(3)})`;
  return `${entry.label} matched the enrolled voice of ${entry.name}${score}`;
}

// A near miss in words: "Alice? — confirm", or when Alice is another speaker of this
// recording, that this one is probably her too (the diarizer split one voice in two).
function suggestionText({ name, same_as: sameAs }) {
  return sameAs ? `${name}? — probably the same person as ${name} (${sameAs}); confirm`
                : `${name}? — confirm`;
}

function suggestionTitle(entry) {
  const { name, score, same_as: sameAs } = entry.suggested;
  const match = `match ${score.toFixed(3)}, just under the threshold`;
  const split = sameAs ? `; ${sameAs} is ${name} in this recording, so this is most likely ` +
    `${name} split in two` : "";
  return `${entry.label} resembles the enrolled voice of ${name} (${match})${split}. ` +
    `Confirm adds ${entry.label}'s voice in this recording as a sample of ${name}.`;
}

// The legend: a matched speaker shows the name and the score; any other one can be
// saved as a known speaker (a new person, or one more sample of an enrolled one), and
// a near miss offers to confirm the person it resembles.
function renderSpeakers() {
  const talk = {};
  for (const s of view.result.segments) talk[s.speaker] = (talk[s.speaker] ?? 0) + s.end_ms - s.start_ms;
  $("[data-speakers]", panel).replaceChildren(...view.entries.map((entry) => {
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    const style = { "--spk": colour(entry.key) };
    if (entry.name) {
      return el("div", { class: "speaker", dataset: { speakerLegend: entry.label, matched: "" }, style,
                         title: matchTitle(entry) },
        swatch, el("span", { class: "speaker-name", tabindex: "-1" }, entry.name),
        entry.score === null ? null
          : el("span", { class: "match", dataset: { match: "" } }, `match ${entry.score.toFixed(3)}`),
        el("span", { class: "muted" }, `${entry.label} · ${clock(talk[entry.key])}`));
    }
    const input = el("input", { type: "text", list: "known-speaker-names", maxlength: "64", autocomplete: "off",
      placeholder: "Name", "aria-label": `Name for ${entry.label}`, dataset: { enrollAs: entry.label } });
    const form = el("form", { class: "enroll-as" }, input,
      el("button", { type: "submit", class: "btn btn-small", dataset: { action: "enroll-speaker" },
                     "aria-label": `Save ${entry.label} as known speaker` }, "Save as known speaker"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      enrollSpeaker(entry, input);
    });
    return el("div", { class: "speaker", dataset: { speakerLegend: entry.label }, style },
      swatch, el("span", { class: "speaker-name", tabindex: "-1" }, entry.label),
      el("span", { class: "muted" }, clock(talk[entry.key])),
      entry.suggested ? suggestion(entry) : null, form);
  }));
}

function suggestion(entry) {
  const { name } = entry.suggested;
  const confirm = el("button", { type: "button", class: "btn btn-small btn-primary",
    dataset: { action: "confirm-suggestion", confirmSuggestion: entry.label },
    "aria-label": `Confirm that ${entry.label} is ${name}`,
    onclick: () => confirmSuggestion(entry) }, "Confirm");
  return el("span", { class: "suggestion", dataset: { suggestion: entry.label, suggestedName: name },
                      title: suggestionTitle(entry) },
    el("span", { dataset: { suggestionText: "" } }, suggestionText(entry.suggested)), confirm);
}

// "This is Alice": enroll the job's speaker, or add it as a sample when Alice is
// known already; then fetch the result again, which now names them.
async function enrollSpeaker(entry, input) {
  const job = view.job;
  const name = input.value.trim();
  if (!name) { enrollMessage(`Type a name for ${entry.label}.`, "error"); input.focus(); return; }
  const controls = $("[data-speakers]", panel).querySelectorAll("input, button");
  for (const control of controls) control.disabled = true;
  enrollMessage(`Saving ${entry.label} as ${name}…`);
  let person;
  try {
    const target = enrollTarget(name, await refreshSpeakers());
    person = target.person;
    const body = { job_id: job.id, label: entry.label };
    await fetchJSON(target.path, { method: "POST", json: person ? body : { name, ...body } });
  } catch (err) {
    if (currentId !== job.id) return;
    for (const control of controls) control.disabled = false;
    enrollMessage(`${entry.label} was not saved as ${person?.name ?? name}: ${err.message}`, "error");
    input.focus();
    return;
  }
  refreshSpeakers(); // the Known speakers panel
  if (currentId !== job.id) return;
  const named = await reloadNamed(job, entry.label);
  const saved = person ? `${entry.label} was added to ${person.name} as one more sample`
                       : `${entry.label} is saved as ${name}`;
  if (named) {
    enrollMessage(`${saved}: this recording, its downloads and later recordings name them.`, "ok");
  } else {
    enrollMessage(`${saved}, but their voice in this recording is still not matched.`, "info");
  }
}

// "Yes, that is Alice": one more sample of the enrolled Alice from this job's speaker;
// then the result is fetched again, which names them if the sample makes them match.
async function confirmSuggestion(entry) {
  const job = view.job;
  const { name } = entry.suggested;
  const controls = $("[data-speakers]", panel).querySelectorAll("input, button");
  for (const control of controls) control.disabled = true;
  enrollMessage(`Adding ${entry.label} to ${name}…`);
  try {
    const { person, path } = enrollTarget(name, await refreshSpeakers());
    if (!person) throw new Error(`${name} is no longer enrolled`);
    await fetchJSON(path, { method: "POST", json: { job_id: job.id, label: entry.label } });
  } catch (err) {
    if (currentId !== job.id) return;
    for (const control of controls) control.disabled = false;
    enrollMessage(`${entry.label} was not added to ${name}: ${err.message}`, "error");
    $(`[data-confirm-suggestion="${CSS.escape(entry.label)}"]`, panel)?.focus();
    return;
  }
  refreshSpeakers(); // the Known speakers panel
  if (currentId !== job.id) return;
  const saved = `${entry.label} was added as a sample of ${name}`;
  if (await reloadNamed(job, entry.label)) {
    enrollMessage(`${saved}: this recording, its downloads and later recordings name them.`, "ok");
  } else {
    enrollMessage(`${saved}, but their voice in this recording is still not matched.`, "info");
  }
}

// Fetch the result again after a sample was saved from `label`, put the keyboard back
// on that speaker's legend entry, and say whether the result now names them.
async function reloadNamed(job, label) {
  await loadResult(job);
  $(`[data-speaker-legend="${CSS.escape(label)}"] .speaker-name`, panel)?.focus();
  return Boolean(view?.entries.find((e) => e.label === label)?.name);
}

// One lane per speaker: who speaks when, at a glance. Click a lane to seek there.
function renderTimeline() {
  const total = Math.max(1, view.result.duration * 1000);
  const lanes = view.speakers.map((spk) => el("div", { class: "lane", dataset: { lane: spk },
                                                       style: { "--spk": colour(spk) } },
    el("span", { class: "lane-label" }, spk),
    el("div", { class: "lane-track" }, ...view.result.segments.filter((s) => s.speaker === spk)
      .map((s) => el("span", { class: "seg", title: `${clock(s.start_ms)}–${clock(s.end_ms)}`,
        style: { left: `${(s.start_ms / total) * 100}%`,
                 width: `${Math.max(0.2, ((s.end_ms - s.start_ms) / total) * 100)}%` } })))));
  $("[data-timeline]", panel).replaceChildren(...lanes, el("div", { class: "playhead", hidden: true }));
}

function seekFromTimeline(e) {
  const track = e.target.closest(".lane-track");
  if (!track || !view) return;
  const box = track.getBoundingClientRect();
  const fraction = Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
  seek(fraction * view.result.duration * 1000);
}

function renderDownloads(job) {
  const stem = (job.filename || "recording").replace(/\.[^.]+$/, "");
  $("[data-downloads]", panel).replaceChildren(...FORMATS.map((fmt) => el("button", {
    type: "button", class: "btn btn-small", dataset: { download: fmt },
    onclick: () => download(job.id, fmt, stem) }, fmt.toUpperCase())));
}

async function download(id, fmt, stem) {
  try {
    const response = await api(`/api/audio/jobs/${encodeURIComponent(id)}/result?format=${fmt}`,
                               { headers: { Accept: "*/*" } });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `${stem}.${fmt}`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  } catch (err) {
    message(`Download as ${fmt.toUpperCase()} failed: ${err.message}`, "error");
  }
}

function renderBlocks() {
  const list = $("[data-blocks]", panel);
  view.blocks = view.result.segments.map((seg) => {
    const entry = entryOf(seg.speaker);
    const score = entry?.name && entry.score !== null ? `${entry.name} · match score ${entry.score.toFixed(3)}` : null;
    const item = el("li", { class: "block", style: { "--spk": colour(seg.speaker) },
                            dataset: { block: "", speaker: seg.speaker, startMs: seg.start_ms } },
      el("div", { class: "block-head" },
        el("span", { class: "swatch", "aria-hidden": "true" }),
        el("span", { class: "who", title: score }, seg.speaker),
        el("button", { type: "button", class: "time", dataset: { action: "seek" },
                       "aria-label": `Play from ${clock(seg.start_ms)}` },
          `${clock(seg.start_ms)}–${clock(seg.end_ms)}`),
        entry?.suggested ? suggestionMark(entry) : null,
        entry && !entry.name ? nameButton(entry.label) : null),
      el("p", { class: "text", dataset: { text: "" } }, seg.text));
    item.addEventListener("click", (e) => {
      if (window.getSelection()?.toString()) return; // selecting text, not seeking
      seek(seg.start_ms);
      if (e.target.closest("button")) e.target.closest("button").focus();
    });
    return { seg, item };
  });
  list.replaceChildren(...view.blocks.map((b) => b.item));
  $("[data-no-speech]", panel).hidden = view.blocks.length > 0;
}

// A near miss on each of the speaker's blocks, in words: "Alice?" (confirmed in the legend).
function suggestionMark(entry) {
  return el("span", { class: "suggested-mark", dataset: { suggestedMark: entry.label },
                      title: suggestionTitle(entry) }, `${entry.suggested.name}?`);
}

// "Who is this?" on a block of an unnamed speaker: to that speaker's name field in the
// legend, where saving enrolls them from this recording.
function nameButton(label) {
  return el("button", { type: "button", class: "btn btn-small name-it", dataset: { action: "name-from-block" },
                        "aria-label": `Name ${label}`,
                        onclick: (e) => {
                          e.stopPropagation(); // naming, not seeking
                          const input = $(`[data-enroll-as="${CSS.escape(label)}"]`, panel);
                          input?.scrollIntoView({ block: "center" });
                          input?.focus();
                        } }, "Who is this?");
}

function seek(ms) {
  const player = $("[data-player]", panel);
  if (player.hidden || !player.src) return;
  player.currentTime = ms / 1000;
  player.play().catch(() => { /* autoplay refused: the position is still set */ });
  highlight(ms);
}

// Mark the block being heard, and move the playhead.
function highlight(ms) {
  if (!view) return;
  const i = lastStartingBefore(view.blocks, ms);
  const playing = i >= 0 && ms < view.blocks[i].seg.end_ms ? view.blocks[i].item : null;
  for (const b of panel.querySelectorAll(".block.playing")) {
    if (b !== playing) { b.classList.remove("playing"); b.removeAttribute("aria-current"); }
  }
  if (playing) { playing.classList.add("playing"); playing.setAttribute("aria-current", "true"); }
  const head = $(".playhead", panel);
  if (head) {
    head.hidden = false;
    head.style.setProperty("--pos", String(Math.min(1, ms / 1000 / view.result.duration)));
  }
}

function lastStartingBefore(blocks, ms) {
  let lo = 0;
  let hi = blocks.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (blocks[mid].seg.start_ms <= ms) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}

// -- recent jobs ----------------------------------------------------------------

async function refreshList() {
  let jobs;
  try {
    ({ jobs } = await fetchJSON("/api/audio/jobs"));
  } catch {
    return; // the upload area reports errors; an empty list is fine here
  }
  const list = $("[data-audio-jobs]", panel);
  $("[data-audio-history]", panel).hidden = jobs.length === 0;
  list.replaceChildren(...jobs.slice(0, 20).map((job) => {
    const [label, tone] = STATUS[job.status] ?? [job.status, "off"];
    return el("li", { dataset: { audioJobItem: job.id, status: job.status } },
      el("span", { class: "job-name", title: job.filename }, job.filename),
      pill(label, tone),
      el("span", { class: "muted", title: fullTime(job.created_at) },
        `${ago(job.created_at)}${job.duration ? ` · ${clock(job.duration * 1000)}` : ""}`),
      el("span", { class: "job-actions" },
        el("button", { type: "button", class: "btn btn-small", dataset: { action: "open-audio-job" },
                       onclick: () => open(job.id) }, "Show"),
        el("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "remove-audio-job" },
                       onclick: () => remove(job) }, FINAL.includes(job.status) ? "Remove" : "Cancel")));
  }));
}

async function open(id) {
  message("");
  try {
    await show(await fetchJSON(`/api/audio/jobs/${encodeURIComponent(id)}`));
  } catch (err) {
    message(`Cannot open the job: ${err.message}`, "error");
  }
}

async function remove(job) {
  const running = !FINAL.includes(job.status);
  const ok = await confirmAction({
    title: `${running ? "Cancel" : "Remove"} ${job.filename}?`,
    body: running ? "The transcription stops and its partial work is thrown away."
                  : "The job and its result are deleted from spark-control.",
    confirm: running ? "Cancel transcription" : "Remove", danger: true });
  if (!ok) return;
  try {
    await api(`/api/audio/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
    if (currentId === job.id && !running) { forget(); sessionStorage.removeItem(JOB_KEY); }
  } catch (err) {
    message(`${running ? "Cancel" : "Remove"} failed: ${err.message}`, "error");
  }
  listPoller.now();
}

function capital(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

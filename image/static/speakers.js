// Known speakers panel: the voice library (GET /api/speakers). Enroll a person from
// a clip of their voice, rename them, delete them and every voiceprint of theirs.
// Speakers are also enrolled from the audio panel (a speaker of a finished job); it
// calls refreshSpeakers() afterwards and listens for SPEAKERS_EVENT to keep its
// names and its list of known names current.

import { fetchJSON, isUnauthorized, upload } from "./api.js";
import { $, confirmAction, el, fullTime, seconds, setText, showMessage } from "./ui.js";

// Sent on window after every load of the list: detail {speakers, changed}; changed is
// true when this panel changed the library (results shown elsewhere may name differently).
export const SPEAKERS_EVENT = "spark-control:speakers";

let panel;
let known = []; // the list as last loaded
let editing = null; // id of the person whose rename form is open
let chain = Promise.resolve(); // loads run one after another, in the order asked

export function startSpeakers() {
  panel = $('[data-panel="speakers"]');
  $("[data-enroll-form]", panel).addEventListener("submit", (e) => {
    e.preventDefault();
    enrollFromFile();
  });
  refreshSpeakers();
}

// The people enrolled, as last loaded (sorted by name).
export function knownSpeakers() {
  return known;
}

// Reload the list (and tell the audio panel); resolves with the people enrolled.
export function refreshSpeakers({ changed = false } = {}) {
  const run = chain.then(() => load(changed));
  chain = run.catch(() => {});
  return run;
}

async function load(changed) {
  let list;
  try {
    list = await fetchJSON("/api/speakers");
  } catch (err) {
    if (!isUnauthorized(err)) message(`Cannot load the known speakers: ${err.message}`, "error");
    return known;
  }
  known = list.speakers;
  render(list);
  window.dispatchEvent(new CustomEvent(SPEAKERS_EVENT, { detail: { speakers: known, changed } }));
  return known;
}

function message(text, kind = "info") {
  showMessage($("[data-speakers-message]", panel), text, kind);
}

// -- the list ---------------------------------------------------------------------

function render(list) {
  const model = $("[data-speakers-model]", panel);
  const parts = [];
  if (list.model) parts.push(`Embedding model ${list.model}`);
  if (list.threshold !== null && list.threshold !== undefined) parts.push(`match threshold ${list.threshold}`);
  setText(model, parts.join(" · "));
  model.hidden = parts.length === 0;
  if (list.min_enroll_s) setText($("[data-enroll-min]", panel), `at least ${list.min_enroll_s} s of speech`);

  const box = $("[data-known-speakers]", panel);
  if (editing && !known.some((p) => p.id === editing)) editing = null;
  // The item being renamed is kept as it is: a reload must not throw away what is typed.
  const kept = editing ? box.querySelector(`[data-known-speaker="${CSS.escape(editing)}"]`) : null;
  box.replaceChildren(...known.map((person) => (person.id === editing && kept ? kept : item(person, list.model))));
  box.hidden = known.length === 0;
  $("[data-speakers-empty]", panel).hidden = known.length > 0;
  $("[data-known-names]", panel).replaceChildren(...known.map((p) => el("option", { value: p.name })));
}

function item(person, model) {
  const total = person.samples.reduce((sum, s) => sum + s.seconds, 0);
  const count = person.samples.length;
  const unmatched = model && count > 0 && !person.samples.some((s) => s.model === model);
  const rename = el("button", { type: "button", class: "btn btn-small", dataset: { action: "rename-speaker" },
                                "aria-label": `Rename ${person.name}`, onclick: () => openRename(person) }, "Rename");
  const remove = el("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "delete-speaker" },
                                "aria-label": `Delete ${person.name}…`, onclick: () => deletePerson(person) }, "Delete…");
  return el("li", { class: "known", dataset: { knownSpeaker: person.id } },
    el("div", { class: "known-row", dataset: { knownRow: "" } },
      el("span", { class: "known-name", dataset: { knownName: "" }, title: `Enrolled ${fullTime(person.created_at)}` },
        person.name),
      el("span", { class: "muted", dataset: { knownDetail: "" } },
        `${count} sample${count === 1 ? "" : "s"} · ${seconds(total) || "0 s"} of speech`),
      unmatched ? el("span", { class: "known-note", dataset: { knownNote: "" } },
        `no sample of ${model}: not recognised until one is added`) : null,
      el("span", { class: "known-actions" }, rename, remove)));
}

// -- rename -----------------------------------------------------------------------

function openRename(person) {
  if (editing) closeRename(false);
  const li = $(`[data-known-speaker="${CSS.escape(person.id)}"]`, panel);
  if (!li) return;
  editing = person.id;
  const inputId = `rename-${person.id}`;
  const input = el("input", { id: inputId, type: "text", value: person.name, maxlength: "64",
                              autocomplete: "off", dataset: { renameInput: "" } });
  const note = el("p", { class: "message", hidden: true, dataset: { renameMessage: "" } });
  const cancel = el("button", { type: "button", class: "btn btn-small", dataset: { action: "cancel-rename" },
                                onclick: () => closeRename(true) }, "Cancel");
  const form = el("form", { class: "rename-form", dataset: { renameForm: "" } },
    el("label", { for: inputId, class: "visually-hidden" }, `New name for ${person.name}`),
    input,
    el("button", { type: "submit", class: "btn btn-small btn-primary", dataset: { action: "save-rename" } }, "Save"),
    cancel);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { e.preventDefault(); closeRename(true); }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    saveRename(person, input, note, form);
  });
  $("[data-known-row]", li).hidden = true;
  li.append(form, note);
  input.focus();
  input.select();
}

// Back to the plain item; `focus` puts the keyboard back on its Rename button.
function closeRename(focus) {
  const id = editing;
  editing = null;
  const li = id && $(`[data-known-speaker="${CSS.escape(id)}"]`, panel);
  if (!li) return;
  for (const node of li.querySelectorAll("[data-rename-form], [data-rename-message]")) node.remove();
  $("[data-known-row]", li).hidden = false;
  if (focus) $('[data-action="rename-speaker"]', li).focus();
}

async function saveRename(person, input, note, form) {
  const name = input.value.trim();
  if (!name) { showMessage(note, "Type a name.", "error"); input.focus(); return; }
  if (name === person.name) { closeRename(true); return; }
  for (const control of form.elements) control.disabled = true;
  showMessage(note, "Saving…");
  try {
    await fetchJSON(`/api/speakers/${encodeURIComponent(person.id)}`, { method: "PATCH", json: { name } });
  } catch (err) {
    for (const control of form.elements) control.disabled = false;
    showMessage(note, `Not renamed: ${err.message}`, "error");
    input.focus();
    return;
  }
  editing = null;
  await refreshSpeakers({ changed: true });
  message(`${person.name} is now ${name}.`, "ok");
  $(`[data-known-speaker="${CSS.escape(person.id)}"] [data-action="rename-speaker"]`, panel)?.focus();
}

// -- delete -----------------------------------------------------------------------

async function deletePerson(person) {
  const count = person.samples.length;
  const ok = await confirmAction({
    title: `Delete ${person.name}?`,
    body: `${person.name} and ${count === 1 ? "their voiceprint" : `all ${count} of their voiceprints`} ` +
      "are deleted from spark-control. Recordings already transcribed show their Speaker_N label " +
      "instead of this name again.",
    confirm: "Delete", danger: true });
  if (!ok) return;
  try {
    await fetchJSON(`/api/speakers/${encodeURIComponent(person.id)}`, { method: "DELETE" });
  } catch (err) {
    message(`${person.name} was not deleted: ${err.message}`, "error");
    return;
  }
  if (editing === person.id) editing = null;
  await refreshSpeakers({ changed: true });
  message(`${person.name} and their voiceprints were deleted.`, "ok");
}

// -- enroll from a file -------------------------------------------------------------

async function enrollFromFile() {
  const nameInput = $("[data-enroll-name]", panel);
  const fileInput = $("[data-enroll-file]", panel);
  const button = $('[data-action="enroll-file"]', panel);
  const name = nameInput.value.trim();
  const file = fileInput.files[0];
  if (!name) { message("Type the person's name.", "error"); nameInput.focus(); return; }
  if (!file) { message(`Choose a clip of ${name}'s voice, with no one else speaking.`, "error"); fileInput.focus(); return; }
  button.disabled = true;
  // A name already enrolled gets one more sample rather than a refusal.
  const { person, path } = enrollTarget(name, await refreshSpeakers());
  const form = new FormData();
  if (!person) form.append("name", name);
  form.append("file", file, file.name);
  message(`Uploading ${file.name}…`);
  try {
    await upload(path, form, (fraction) => {
      message(fraction >= 1 ? `${file.name} uploaded; taking ${person?.name ?? name}'s voiceprint…`
                            : `Uploading ${file.name}… ${Math.round(fraction * 100)} %`);
    });
  } catch (err) {
    message(`${person ? `No sample was added to ${person.name}` : `${name} was not enrolled`}: ${err.message}`, "error");
    return;
  } finally {
    button.disabled = false;
  }
  nameInput.value = "";
  fileInput.value = "";
  await refreshSpeakers({ changed: true });
  message(person ? `Added a sample to ${person.name}.`
                 : `${name} is enrolled: recordings where their voice is recognised show their name.`, "ok");
}

// Where a sample for a typed name goes: one more sample of the person enrolled under
// that name, or a new person (the request then carries the name).
export function enrollTarget(name, list = known) {
  const person = findKnown(name, list);
  return { person, path: person ? `/api/speakers/${encodeURIComponent(person.id)}/samples` : "/api/speakers" };
}

// The enrolled person a typed name means (names are unique whatever their case).
function findKnown(name, list = known) {
  const wanted = name.trim().split(/\s+/).join(" ").toLowerCase();
  return list.find((p) => p.name.toLowerCase() === wanted) ?? null;
}

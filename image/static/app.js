// spark-control dashboard: vanilla ES modules, no build step. Each panel lives in
// its own module and refreshes itself; api.js is the only place that talks HTTP.

import { login, logout, UNAUTHORIZED } from "./api.js";
import { startAudio } from "./audio.js";
import { startHost } from "./host.js";
import { startHosts } from "./hosts.js";
import { startServices } from "./services.js";
import { startSpeakers } from "./speakers.js";
import { startSpeechModels } from "./speech-models.js";
import { startSpeechServer } from "./speech-server.js";
import { $, showMessage } from "./ui.js";

function start() {
  setUpLogin();
  startHosts();
  startHost();
  startServices();
  startSpeechServer();
  startSpeechModels();
  startAudio();
  startSpeakers();
}

// Any 401 means this browser has no valid session: show the sign-in form instead
// of the panels. Signing in sets the cookie; a reload then starts everything afresh.
function setUpLogin() {
  const box = $("[data-login]");
  window.addEventListener(UNAUTHORIZED, () => {
    if (!box.hidden) return;
    box.hidden = false;
    $("[data-logout]").hidden = true;
    document.body.classList.add("signed-out");
    $("[data-login-token]").focus();
  });
  $("[data-logout]").addEventListener("click", async () => {
    await logout();
    location.reload(); // the next API call answers 401 and shows the sign-in form
  });
  $("[data-login-form]").addEventListener("submit", async (e) => {
    e.preventDefault();
    const message = $("[data-login-message]");
    showMessage(message, "Signing in…");
    try {
      await login($("[data-login-token]").value.trim());
      location.reload();
    } catch (err) {
      showMessage(message, err.message, "error");
    }
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();

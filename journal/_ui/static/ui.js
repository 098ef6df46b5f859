// journal ui: load a run's events when it is expanded, and follow a running verification.
// Served by the package itself; no library, no network but the page's own origin.
"use strict";

function loadRun(details) {
  if (!details.open || details.dataset.loaded) return;
  details.dataset.loaded = "1";
  const box = details.querySelector(".run-events");
  box.classList.add("loading");
  fetch(details.dataset.src, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status))))
    .then((html) => {
      box.innerHTML = html;
      box.classList.remove("loading");
    })
    .catch((err) => {
      box.textContent = "could not load the run's events: " + err.message;
      delete details.dataset.loaded;
    });
}

function followVerify(box) {
  const state = box.querySelector("[data-state]");
  if (!state || state.dataset.state !== "running") return;
  setTimeout(() => {
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((job) => {
        box.innerHTML = job.html;
        followVerify(box);
      })
      .catch(() => followVerify(box));
  }, 500);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("details.run").forEach((d) => {
    d.addEventListener("toggle", () => loadRun(d));
  });
  const verify = document.getElementById("verify");
  if (verify) followVerify(verify);
});

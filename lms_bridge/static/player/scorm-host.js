/*
 * The player page's side of the SCORM run-time (lms_bridge/player/runtime.py). The run-time
 * itself (scorm-again, static/player/content-runtime.js) runs in the content frame, on the content
 * origin, next to the SCO; this page only
 *   - hands it its configuration (#scorm-config: cmi start values, commit URL and commit token,
 *     the SCO's URL) when it asks, by postMessage to that frame's window and origin only; and
 *   - refreshes the progress bar from the server when the run-time says a commit changed
 *     something, and shows a fixed message when a commit failed.
 * Messages are accepted only from the content frame's window and origin (data-origin), and nothing
 * they carry is trusted or shown: content on that origin could forge them.
 */
(function () {
  "use strict";
  var node = document.getElementById("scorm-config");
  var frame = document.getElementById("content-frame");
  if (!node || !frame) return;
  var cfg = JSON.parse(node.textContent);
  var origin = frame.getAttribute("data-origin") || window.location.origin;
  var status = document.getElementById("runtime-status");
  var pending = null;

  function say(text) {
    if (status && status.textContent !== text) status.textContent = text;
  }

  function refreshSoon() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      if (window.LmsBridgePlayer) window.LmsBridgePlayer.refreshProgress();
    }, 300);
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || typeof data.type !== "string") return;
    if (data.type === "lms_bridge.runtime.ready") {
      frame.contentWindow.postMessage({ type: "lms_bridge.runtime.config", config: cfg }, origin);
    } else if (data.type === "lms_bridge.runtime.committed" || data.type === "lms_bridge.runtime.terminated") {
      refreshSoon();
    } else if (data.type === "lms_bridge.runtime.error") {
      say(data.status === 401 || data.status === 403
        ? "Your session for this activity has expired: reload the page to go on recording your progress."
        : "Your progress could not be saved just now; it will be sent again with the next save.");
    }
  });
})();

/* The player page: focus management on navigation, progress bar updates, quiz result focus. */
(function () {
  "use strict";
  var root = document.getElementById("launch-view");
  if (!root) return;
  // After moving to another activity (outline and pager links end in #activity-title), put the
  // keyboard focus on the new activity's title, not the top of the page. (No storage API: it is
  // often blocked in third-party iframes.)
  var result = document.getElementById("quiz-result") || document.getElementById("quiz-error");
  if (result) {
    result.focus();
  } else if (window.location.hash === "#activity-title") {
    var title = document.getElementById("activity-title");
    if (title) title.focus();
  }

  function showProgress(p) {
    if (!p || typeof p.percent !== "number") return;
    var bar = document.getElementById("progress-bar");
    if (bar) {
      bar.setAttribute("aria-valuenow", String(p.percent));
      bar.setAttribute("aria-valuetext", p.percent + " percent");
      var fill = bar.querySelector(".progress-fill");
      if (fill) fill.style.width = p.percent + "%";
    }
    var text = document.getElementById("progress-text");
    var newText = p.done + " of " + p.total + " required activities done (" + p.percent + " %)";
    if (text && text.textContent !== newText) text.textContent = newText;
    var done = document.getElementById("course-complete");
    if (done) done.hidden = !p.completed;
    Object.keys(p.activities || {}).forEach(function (key) {
      var link = root.querySelector('.outline a[data-key="' + key + '"]');
      if (!link) return;
      var item = link.parentNode;
      var a = p.activities[key];
      var state = a.done ? "done" : (a.completion_status === "not_attempted" || a.completion_status === "unknown" ? "not_started" : "in_progress");
      item.className = item.className.replace(/status-[a-z_]+/, "status-" + state);
      var icon = link.querySelector(".status-icon");
      if (icon) icon.textContent = state === "done" ? "\u2713" : state === "in_progress" ? "\u25D0" : "\u25CB";
      var label = link.querySelector(".status-text");
      if (label) label.textContent = "(" + (state === "done" ? "done" : state === "in_progress" ? "in progress" : "not started") + ")";
    });
    root.setAttribute("data-percent", String(p.percent));
  }

  function refreshProgress() {
    var url = root.getAttribute("data-progress-url");
    if (!url || !window.fetch) return;
    fetch(url, { credentials: "omit", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(showProgress)
      .catch(function () { /* the next navigation shows it */ });
  }

  window.LmsBridgePlayer = { showProgress: showProgress, refreshProgress: refreshProgress };
  // cmi5 AUs and content pages report straight to the server: look again now and then.
  var kind = root.getAttribute("data-kind");
  if (kind === "au" || kind === "sco") setInterval(refreshProgress, 5000);
})();

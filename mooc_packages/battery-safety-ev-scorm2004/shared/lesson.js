/*
 * lesson.js - tracking for a lesson SCO.
 * (c) lms_bridge contributors, licensed under CC BY 4.0 (see ../LICENCE.txt).
 *
 * - Initialize; on resume (cmi.entry = "resume") move to the section stored in cmi.location.
 * - While the learner reads, cmi.location is the last section reached and
 *   cmi.progress_measure the share of sections seen.
 * - "Mark this lesson as complete" sets cmi.completion_status = "completed".
 *   A lesson has no test, so cmi.success_status stays "unknown".
 * - On leaving: cmi.session_time, cmi.exit ("suspend" to keep the bookmark while the
 *   lesson is incomplete, "normal" once it is complete), Commit, Terminate.
 */
(function () {
  "use strict";

  var SCORM = window.SCORM;
  var sections = Array.prototype.slice.call(document.querySelectorAll("section[data-track]"));
  var status = document.getElementById("lms-status");
  var button = document.getElementById("mark-complete");
  var seen = {};
  var completed = false;

  function say(text) {
    if (status) status.textContent = text;
  }

  function saveProgress(section) {
    seen[section.id] = true;
    var share = sections.length ? Object.keys(seen).length / sections.length : 1;
    SCORM.set("cmi.location", section.id);
    if (!completed) SCORM.set("cmi.progress_measure", Math.min(1, share).toFixed(2));
  }

  function complete() {
    completed = true;
    SCORM.set("cmi.progress_measure", "1");
    SCORM.set("cmi.completion_status", "completed");
    SCORM.commit();
    if (button) {
      button.disabled = true;
      button.textContent = "Lesson completed";
    }
    say(SCORM.connected() ? "Lesson completed and saved." : "Lesson completed (not connected to an LMS, nothing was saved).");
  }

  function resume() {
    var where = SCORM.get("cmi.location");
    if (SCORM.get("cmi.entry") !== "resume" || !where) return;
    var target = document.getElementById(where);
    if (!target) return;
    var heading = target.querySelector("h2") || target;
    heading.setAttribute("tabindex", "-1");
    heading.focus();
    target.scrollIntoView();
    say("Welcome back: you continue where you left off.");
  }

  var connected = SCORM.start();
  if (!connected) say("Not connected to an LMS: your progress in this lesson is not saved.");

  if (SCORM.get("cmi.completion_status") === "completed") {
    completed = true;
    if (button) {
      button.disabled = true;
      button.textContent = "Lesson completed";
    }
  } else {
    SCORM.set("cmi.completion_status", "incomplete");
  }
  resume();

  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) saveProgress(entry.target);
      });
    }, { threshold: 0.4 });
    sections.forEach(function (s) { observer.observe(s); });
  } else {
    sections.forEach(saveProgress);
  }
  // Keyboard users who tab through the lesson also move the bookmark.
  document.addEventListener("focusin", function (event) {
    var section = event.target.closest && event.target.closest("section[data-track]");
    if (section) saveProgress(section);
  });

  if (button) button.addEventListener("click", complete);

  function leave() {
    SCORM.finish(completed ? "normal" : "suspend");
  }
  window.addEventListener("pagehide", leave);
  window.addEventListener("beforeunload", leave);
})();

/*
 * au-lesson.js - a lesson AU: cmi5 launch, bookmark, "completed" when the learner says so.
 * (c) lms_bridge contributors, licensed under CC BY 4.0 (see ../LICENCE.txt).
 */
(function () {
  "use strict";

  var status = document.getElementById("lms-status");
  var doneButton = document.getElementById("mark-complete");
  var exitButton = document.getElementById("exit-au");
  var sections = Array.prototype.slice.call(document.querySelectorAll("section[data-track]"));
  var au = null;
  var lastSaved = "";
  var saveTimer = null;

  function say(text) {
    if (status) status.textContent = text;
  }

  function markDone(text) {
    if (!doneButton) return;
    doneButton.disabled = true;
    doneButton.textContent = text;
  }

  function bookmark(section) {
    if (!au || !au.launchData || section.id === lastSaved) return;
    lastSaved = section.id;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(function () { au.saveProgress({ location: section.id }); }, 2000);
  }

  function resume() {
    var target = au.progress.location && document.getElementById(au.progress.location);
    if (!target) return;
    var heading = target.querySelector("h2") || target;
    heading.setAttribute("tabindex", "-1");
    heading.focus();
    target.scrollIntoView();
  }

  try {
    au = new window.Cmi5(window.location.search);
  } catch (e) {
    say("Not launched from an LMS: you can read the lesson, but your progress is not recorded.");
  }

  if (au) {
    say("Connecting to the LMS…");
    au.start().then(function () {
      var mode = au.launchMode();
      if (mode !== "Normal") {
        say(mode + " mode: you can look at the lesson, but nothing is recorded.");
      } else if (au.progress.completed) {
        say("You have completed this lesson before.");
      } else {
        say(au.progress.location ? "Welcome back: you continue where you left off." : "Connected: your progress is recorded.");
      }
      if (au.progress.completed) markDone("Lesson completed");
      resume();
    }).catch(function (err) {
      au = null;
      say("Could not connect to the LMS (" + err.message + "). Your progress is not recorded.");
    });
  }

  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) { if (entry.isIntersecting) bookmark(entry.target); });
    }, { threshold: 0.4 });
    sections.forEach(function (s) { observer.observe(s); });
  }
  document.addEventListener("focusin", function (event) {
    var section = event.target.closest && event.target.closest("section[data-track]");
    if (section) bookmark(section);
  });

  if (doneButton) {
    doneButton.addEventListener("click", function () {
      if (!au || !au.launchData) {
        markDone("Lesson completed");
        say("Lesson completed (not connected to an LMS, nothing was recorded).");
        return;
      }
      doneButton.disabled = true;
      au.complete().then(function () {
        markDone("Lesson completed");
        say(au.launchMode() === "Normal" ? "Lesson completed and recorded." : "Lesson completed (not recorded in " + au.launchMode() + " mode).");
      }).catch(function (err) {
        doneButton.disabled = false;
        say("Could not record the completion (" + err.message + "). Please try again.");
      });
    });
  }

  if (exitButton) {
    exitButton.addEventListener("click", function () {
      var target = au ? au.returnUrl() : "";
      var done = au ? au.terminate() : Promise.resolve();
      done.catch(function () {}).then(function () {
        if (target) window.location.assign(target);
        else say("You can close this window now.");
      });
    });
  }

  window.addEventListener("pagehide", function () {
    if (au) au.terminate().catch(function () {});
  });
})();

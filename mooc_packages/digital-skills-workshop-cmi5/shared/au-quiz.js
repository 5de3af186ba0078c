/*
 * au-quiz.js - the graded quiz AU. Questions are plain HTML form controls (keyboard and
 * screen-reader friendly); window.QUIZ_KEY (answers.js) holds the key and the feedback.
 * On submit the AU sends "passed" or "failed" with result.score (scaled, raw, min, max),
 * judged against the masteryScore from LMS.LaunchData, and "completed" the first time.
 * (c) lms_bridge contributors, licensed under CC BY 4.0 (see ../LICENCE.txt).
 */
(function () {
  "use strict";

  var KEY = window.QUIZ_KEY || {};
  var form = document.getElementById("quiz");
  var result = document.getElementById("result");
  var status = document.getElementById("lms-status");
  var retry = document.getElementById("retry");
  var exitButton = document.getElementById("exit-au");
  var questions = Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
  var au = null;

  function say(text) {
    if (status) status.textContent = text;
  }

  function chosen(q) {
    return Array.prototype.slice.call(q.querySelectorAll("input:checked")).map(function (i) { return i.value; });
  }

  function sameSet(a, b) {
    var x = a.slice().sort();
    var y = b.slice().sort();
    return x.length === y.length && x.every(function (v, i) { return v === y[i]; });
  }

  function pageMastery() {
    var m = parseFloat(form.getAttribute("data-passing"));
    return isNaN(m) ? 0.8 : m;
  }

  function mastery() {
    return au && au.masteryScore() !== null ? au.masteryScore() : pageMastery();
  }

  function showPassMark() {
    var el = document.getElementById("pass-mark");
    if (el) el.textContent = Math.round(mastery() * 100) + " %";
  }

  try {
    au = new window.Cmi5(window.location.search);
  } catch (e) {
    say("Not launched from an LMS: you can take the quiz, but your result is not recorded.");
  }
  if (au) {
    say("Connecting to the LMS…");
    au.start().then(function () {
      showPassMark();
      var mode = au.launchMode();
      if (mode !== "Normal") say(mode + " mode: you can take the quiz, but the result is not recorded.");
      else if (au.progress.passed) say("You have already passed this quiz. You may take it again for practice.");
      else say("Connected: your result will be recorded.");
    }).catch(function (err) {
      au = null;
      say("Could not connect to the LMS (" + err.message + "). Your result is not recorded.");
    });
  }
  showPassMark();

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var open = questions.filter(function (q) { return chosen(q).length === 0; });
    result.hidden = false;
    if (open.length) {
      result.className = "result";
      result.textContent = "Please answer every question before you submit. Not answered yet: " +
        open.map(function (q) { return q.querySelector(".qnum").textContent.replace(/\.$/, ""); }).join(", ") + ".";
      open[0].querySelector("input").focus();
      return;
    }
    var raw = 0;
    var max = 0;
    questions.forEach(function (q) {
      var key = KEY[q.id];
      var ok = sameSet(chosen(q), key.correct);
      max += key.points || 1;
      if (ok) raw += key.points || 1;
      var box = document.getElementById(q.id + "-feedback");
      box.hidden = false;
      box.className = "feedback " + (ok ? "is-correct" : "is-incorrect");
      box.textContent = (ok ? "Correct. " : "Not correct. ") + key.feedback;
    });
    var scaled = max ? raw / max : 0;
    var passed = scaled >= mastery();
    var summary = "You scored " + raw + " of " + max + " (" + Math.round(scaled * 100) + " %). The pass mark is " +
      Math.round(mastery() * 100) + " %: " +
      (passed ? "you passed. Well done." : "not passed yet. Read the feedback under each question, review the lessons and try again.");
    result.className = "result " + (passed ? "is-passed" : "is-failed");
    result.textContent = summary;
    result.focus();
    retry.hidden = false;

    if (!au || !au.launchData) {
      result.textContent = summary + " (Not connected to an LMS: the result was not recorded.)";
      return;
    }
    au.judge(raw, max, pageMastery())
      .then(function () { return au.complete(); })
      .then(function () {
        say(au.launchMode() === "Normal" ? "Your result has been recorded." : "Result not recorded in " + au.launchMode() + " mode.");
      })
      .catch(function (err) { say("Could not record the result (" + err.message + ")."); });
  });

  retry.addEventListener("click", function () {
    form.reset();
    questions.forEach(function (q) {
      var box = document.getElementById(q.id + "-feedback");
      box.hidden = true;
      box.textContent = "";
    });
    result.hidden = true;
    retry.hidden = true;
    form.querySelector("input").focus();
  });

  if (exitButton) {
    exitButton.addEventListener("click", function () {
      var target = au ? au.returnUrl() : "";
      (au ? au.terminate() : Promise.resolve()).catch(function () {}).then(function () {
        if (target) window.location.assign(target);
        else say("You can close this window now.");
      });
    });
  }

  window.addEventListener("pagehide", function () {
    if (au) au.terminate().catch(function () {});
  });
})();

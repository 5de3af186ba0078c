/*
 * quiz.js - a graded quiz SCO (SCORM 2004 4th edition).
 * (c) lms_bridge contributors, licensed under CC BY 4.0 (see ../LICENCE.txt).
 *
 * The questions are plain HTML (fieldset, legend, radio buttons or check boxes with
 * labels), so they work with a keyboard and a screen reader. The answer key and the
 * feedback are in window.QUIZ_KEY (answers.js): { questionId: { correct: [choice values],
 * points: n, feedback: "why" } }.
 *
 * Run-time data written:
 *   cmi.location          id of the last question answered (bookmark)
 *   cmi.suspend_data      the answers given so far, so an interrupted attempt resumes
 *   cmi.interactions.n.*  one "choice" interaction per question on submit
 *   cmi.score.raw/min/max/scaled
 *   cmi.success_status    "passed" when score.scaled >= cmi.scaled_passing_score
 *                         (the LMS sets it from imsss:minNormalizedMeasure; the form's
 *                         data-passing value is the fallback), else "failed"
 *   cmi.completion_status "completed" once the quiz has been submitted
 */
(function () {
  "use strict";

  var SCORM = window.SCORM;
  var KEY = window.QUIZ_KEY || {};
  var form = document.getElementById("quiz");
  var result = document.getElementById("result");
  var status = document.getElementById("lms-status");
  var retry = document.getElementById("retry");
  var questions = Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
  var submitted = false;

  function say(text) {
    if (status) status.textContent = text;
  }

  function chosen(fieldset) {
    return Array.prototype.slice
      .call(fieldset.querySelectorAll("input:checked"))
      .map(function (input) { return input.value; });
  }

  function sameSet(a, b) {
    if (a.length !== b.length) return false;
    var sortedA = a.slice().sort();
    var sortedB = b.slice().sort();
    return sortedA.every(function (v, i) { return v === sortedB[i]; });
  }

  function answers() {
    var out = {};
    questions.forEach(function (q) { out[q.id] = chosen(q); });
    return out;
  }

  function passingScore() {
    var fromLms = parseFloat(SCORM.get("cmi.scaled_passing_score"));
    if (!isNaN(fromLms)) return fromLms;
    var fromPage = parseFloat(form.getAttribute("data-passing"));
    return isNaN(fromPage) ? 0.8 : fromPage;
  }

  function restore() {
    var saved;
    try {
      saved = JSON.parse(SCORM.get("cmi.suspend_data") || "{}");
    } catch (e) {
      saved = {};
    }
    var given = saved.answers || {};
    Object.keys(given).forEach(function (qid) {
      (given[qid] || []).forEach(function (value) {
        var input = form.querySelector('input[name="' + qid + '"][value="' + value + '"]');
        if (input) input.checked = true;
      });
    });
    var where = SCORM.get("cmi.location");
    if (SCORM.get("cmi.entry") === "resume" && where && document.getElementById(where)) {
      say("Welcome back: your earlier answers have been restored.");
    }
  }

  function saveDraft(event) {
    var fieldset = event.target.closest("fieldset.question");
    if (!fieldset) return;
    SCORM.set("cmi.location", fieldset.id);
    SCORM.set("cmi.suspend_data", JSON.stringify({ answers: answers() }));
  }

  function recordInteraction(q, given, correct) {
    var n = parseInt(SCORM.get("cmi.interactions._count"), 10);
    if (isNaN(n)) return;
    var base = "cmi.interactions." + n + ".";
    var key = KEY[q.id];
    SCORM.set(base + "id", q.id);
    SCORM.set(base + "type", "choice");
    SCORM.set(base + "weighting", key.points || 1);
    SCORM.set(base + "learner_response", given.join("[,]"));
    SCORM.set(base + "correct_responses.0.pattern", key.correct.join("[,]"));
    SCORM.set(base + "result", correct ? "correct" : "incorrect");
    var legend = q.querySelector("legend");
    if (legend) SCORM.set(base + "description", legend.textContent.replace(/\s+/g, " ").trim().slice(0, 250));
  }

  function showFeedback(q, correct) {
    var box = document.getElementById(q.id + "-feedback");
    if (!box) return;
    box.hidden = false;
    box.className = "feedback " + (correct ? "is-correct" : "is-incorrect");
    box.textContent = (correct ? "Correct. " : "Not correct. ") + (KEY[q.id].feedback || "");
  }

  function grade(event) {
    event.preventDefault();
    var unanswered = questions.filter(function (q) { return chosen(q).length === 0; });
    if (unanswered.length) {
      result.hidden = false;
      result.className = "result";
      result.textContent = "Please answer every question before you submit. Not answered yet: " +
        unanswered.map(function (q) { return q.querySelector(".qnum").textContent.replace(/\.$/, ""); }).join(", ") + ".";
      var first = unanswered[0].querySelector("input");
      if (first) first.focus();
      return;
    }

    var raw = 0;
    var max = 0;
    questions.forEach(function (q) {
      var key = KEY[q.id];
      var given = chosen(q);
      var correct = sameSet(given, key.correct);
      var points = key.points || 1;
      max += points;
      if (correct) raw += points;
      recordInteraction(q, given, correct);
      showFeedback(q, correct);
    });

    var scaled = max ? Math.round((raw / max) * 10000) / 10000 : 0;
    var passing = passingScore();
    var passed = scaled >= passing;

    SCORM.set("cmi.score.min", 0);
    SCORM.set("cmi.score.max", max);
    SCORM.set("cmi.score.raw", raw);
    SCORM.set("cmi.score.scaled", scaled);
    SCORM.set("cmi.success_status", passed ? "passed" : "failed");
    SCORM.set("cmi.completion_status", "completed");
    SCORM.set("cmi.progress_measure", "1");
    SCORM.set("cmi.suspend_data", JSON.stringify({ answers: answers(), submitted: true }));
    SCORM.commit();
    submitted = true;

    result.hidden = false;
    result.className = "result " + (passed ? "is-passed" : "is-failed");
    result.textContent = "You scored " + raw + " of " + max + " (" + Math.round(scaled * 100) + " %). " +
      "The pass mark is " + Math.round(passing * 100) + " %: " +
      (passed ? "you passed. Well done." : "not passed yet. Read the feedback under each question, review the lessons and try again.") +
      (SCORM.connected() ? "" : " (Not connected to an LMS: the result was not saved.)");
    result.focus();
    if (retry) retry.hidden = false;
  }

  function again() {
    form.reset();
    questions.forEach(function (q) {
      var box = document.getElementById(q.id + "-feedback");
      if (box) { box.hidden = true; box.textContent = ""; }
    });
    result.hidden = true;
    retry.hidden = true;
    SCORM.set("cmi.suspend_data", JSON.stringify({ answers: {} }));
    var first = form.querySelector("input");
    if (first) first.focus();
  }

  var connected = SCORM.start();
  if (!connected) say("Not connected to an LMS: your result is shown but not saved.");
  var passMark = document.getElementById("pass-mark");
  if (passMark) passMark.textContent = Math.round(passingScore() * 100) + " %";
  if (SCORM.get("cmi.success_status") === "passed") say("You have already passed this quiz. You may take it again for practice.");
  if (SCORM.get("cmi.completion_status") !== "completed") SCORM.set("cmi.completion_status", "incomplete");
  restore();

  form.addEventListener("change", saveDraft);
  form.addEventListener("submit", grade);
  if (retry) retry.addEventListener("click", again);

  function leave() {
    SCORM.finish(submitted ? "normal" : "suspend");
  }
  window.addEventListener("pagehide", leave);
  window.addEventListener("beforeunload", leave);
})();

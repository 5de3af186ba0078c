/*
 * cmi5.js - the AU side of a cmi5 launch, without dependencies.
 * Part of "Digital skills for automotive workshops".
 * (c) lms_bridge contributors, licensed under CC BY 4.0 (see ../LICENCE.txt).
 *
 * Follows the cmi5 specification (Quartz):
 *  8.1   the LMS adds endpoint, fetch, actor, registration and activityId to the AU's URL;
 *  8.2   the AU POSTs to the fetch URL once and gets {"auth-token": "..."} (or an error-code);
 *  10    it reads the "LMS.LaunchData" state document: contextTemplate (with the session id),
 *        launchMode, masteryScore, moveOn, returnURL;
 *  9.3   it sends "cmi5 defined" statements: initialized first, then completed / passed /
 *        failed (only in launchMode "Normal"), and terminated last;
 *  9.6   every statement uses the context template, the registration, the cmi5 category
 *        and, for completed / passed / failed, the moveOn category; passed and failed
 *        carry the mastery score extension when the LMS gave one. "passed" is sent at
 *        most once per registration, "failed" at most once per session and never after
 *        a pass.
 *
 * Besides LMS.LaunchData the AU keeps one small state document of its own
 * (stateId "lms_bridge.au.progress": {completed, passed, location}) so that it does not
 * send "completed" or "passed" twice in a registration (cmi5 9.3.2, 9.3.3) and can resume.
 */
(function (global) {
  "use strict";

  var XAPI_VERSION = "1.0.3";
  var VERB = {
    initialized: "http://adlnet.gov/expapi/verbs/initialized",
    completed: "http://adlnet.gov/expapi/verbs/completed",
    passed: "http://adlnet.gov/expapi/verbs/passed",
    failed: "http://adlnet.gov/expapi/verbs/failed",
    terminated: "http://adlnet.gov/expapi/verbs/terminated"
  };
  var CATEGORY_CMI5 = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
  var CATEGORY_MOVEON = "https://w3id.org/xapi/cmi5/context/categories/moveon";
  var EXT_MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore";
  var AU_STATE = "lms_bridge.au.progress";

  function uuid() {
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID();
    var b = global.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function isoDuration(ms) {
    var s = Math.max(0, Math.round(ms / 10) / 100);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var rest = Math.round((s % 60) * 100) / 100;
    return "PT" + (h ? h + "H" : "") + (m ? m + "M" : "") + rest + "S";
  }

  function clone(value) {
    return JSON.parse(JSON.stringify(value));
  }

  /* Reads the launch parameters. Throws when the AU was not launched by a cmi5 LMS. */
  function Cmi5(search) {
    var params = new URLSearchParams(search);
    var missing = ["endpoint", "fetch", "actor", "registration", "activityId"].filter(function (k) {
      return !params.get(k);
    });
    if (missing.length) throw new Error("not launched by a cmi5 LMS (missing " + missing.join(", ") + ")");
    this.endpoint = params.get("endpoint").replace(/\/?$/, "/");
    this.fetchUrl = params.get("fetch");
    this.actor = JSON.parse(params.get("actor"));
    this.registration = params.get("registration");
    this.activityId = params.get("activityId");
    this.token = null;
    this.launchData = null;
    this.progress = { completed: false, passed: false, location: "" };
    this.startedAt = Date.now();
    this.terminated = false;
    this.failedThisSession = false;
  }

  Cmi5.prototype.headers = function (json) {
    var h = { "X-Experience-API-Version": XAPI_VERSION, "Authorization": "Basic " + this.token };
    if (json) h["Content-Type"] = "application/json";
    return h;
  };

  Cmi5.prototype.stateUrl = function (stateId) {
    return this.endpoint + "activities/state?" + new URLSearchParams({
      stateId: stateId,
      activityId: this.activityId,
      agent: JSON.stringify(this.actor),
      registration: this.registration
    }).toString();
  };

  /* 8.2: one POST to the fetch URL; the response holds the authorization token. */
  Cmi5.prototype.fetchToken = function () {
    var self = this;
    return fetch(this.fetchUrl, { method: "POST" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (!body["auth-token"]) {
          throw new Error("the LMS refused the launch (error-code " + body["error-code"] + ": " + (body["error-text"] || "") + ")");
        }
        self.token = body["auth-token"];
      });
  };

  Cmi5.prototype.getState = function (stateId) {
    return fetch(this.stateUrl(stateId), { headers: this.headers(false) }).then(function (r) {
      if (r.status === 404) return null;
      if (!r.ok) throw new Error("state " + stateId + ": HTTP " + r.status);
      return r.json();
    });
  };

  Cmi5.prototype.saveProgress = function (changes) {
    var self = this;
    Object.keys(changes).forEach(function (k) { self.progress[k] = changes[k]; });
    return fetch(this.stateUrl(AU_STATE), {
      method: "PUT",
      headers: this.headers(true),
      body: JSON.stringify(this.progress),
      keepalive: true
    }).catch(function () { /* the bookmark is a convenience; statements are what counts */ });
  };

  /* Fetch the token, read LMS.LaunchData and our own progress, send "initialized". */
  Cmi5.prototype.start = function () {
    var self = this;
    return this.fetchToken()
      .then(function () { return self.getState("LMS.LaunchData"); })
      .then(function (data) {
        if (!data || !data.contextTemplate) throw new Error("LMS.LaunchData is missing");
        self.launchData = data;
        return self.getState(AU_STATE).catch(function () { return null; });
      })
      .then(function (saved) {
        if (saved) {
          self.progress.completed = !!saved.completed;
          self.progress.passed = !!saved.passed;
          self.progress.location = saved.location || "";
        }
        return self.send("initialized");
      });
  };

  Cmi5.prototype.launchMode = function () {
    return (this.launchData && this.launchData.launchMode) || "Normal";
  };

  Cmi5.prototype.masteryScore = function () {
    var m = this.launchData && this.launchData.masteryScore;
    return typeof m === "number" ? m : null;
  };

  /* Build a cmi5 defined statement from the context template (9.6). */
  Cmi5.prototype.statement = function (verb, result) {
    var context = clone(this.launchData.contextTemplate);
    context.registration = this.registration;
    context.contextActivities = context.contextActivities || {};
    var categories = context.contextActivities.category || [];
    categories.push({ id: CATEGORY_CMI5, objectType: "Activity" });
    if (verb === "completed" || verb === "passed" || verb === "failed") {
      categories.push({ id: CATEGORY_MOVEON, objectType: "Activity" });
    }
    context.contextActivities.category = categories;
    if ((verb === "passed" || verb === "failed") && this.masteryScore() !== null) {
      context.extensions = context.extensions || {};
      context.extensions[EXT_MASTERY] = this.masteryScore();
    }
    var statement = {
      id: uuid(),
      actor: this.actor,
      verb: { id: VERB[verb], display: { "en-US": verb } },
      object: { objectType: "Activity", id: this.activityId },
      context: context,
      timestamp: new Date().toISOString()
    };
    if (result) statement.result = result;
    return statement;
  };

  Cmi5.prototype.send = function (verb, result, keepalive) {
    if (this.terminated) return Promise.reject(new Error("the session has ended"));
    return fetch(this.endpoint + "statements", {
      method: "POST",
      headers: this.headers(true),
      body: JSON.stringify(this.statement(verb, result)),
      keepalive: !!keepalive
    }).then(function (r) {
      if (!r.ok) throw new Error(verb + " statement: HTTP " + r.status);
    });
  };

  /* "completed", once per registration and only in Normal mode (9.3.2, 10.2.2). */
  Cmi5.prototype.complete = function () {
    if (this.launchMode() !== "Normal" || this.progress.completed) return Promise.resolve(false);
    var self = this;
    return this.send("completed", { completion: true, duration: isoDuration(Date.now() - this.startedAt) })
      .then(function () { return self.saveProgress({ completed: true }); })
      .then(function () { return true; });
  };

  /* "passed" (at most once per registration) or "failed" (never after a pass), with the score.
     The LMS's masteryScore decides (9.3.3, 9.3.4); fallbackMastery is used only without one. */
  Cmi5.prototype.judge = function (raw, max, fallbackMastery) {
    if (this.launchMode() !== "Normal" || this.progress.passed) return Promise.resolve(null);
    var scaled = max ? Math.round((raw / max) * 10000) / 10000 : 0;
    var mastery = this.masteryScore() !== null ? this.masteryScore() : fallbackMastery;
    var passed = typeof mastery === "number" ? scaled >= mastery : true;
    if (!passed && this.failedThisSession) return Promise.resolve("failed"); // one "failed" per session
    var self = this;
    var result = {
      success: passed,
      score: { scaled: scaled, raw: raw, min: 0, max: max },
      duration: isoDuration(Date.now() - this.startedAt)
    };
    return this.send(passed ? "passed" : "failed", result).then(function () {
      if (passed) return self.saveProgress({ passed: true }).then(function () { return "passed"; });
      self.failedThisSession = true;
      return "failed";
    });
  };

  /* "terminated", the last statement of the session (9.3.8); sent with keepalive so it
     survives the page being closed. */
  Cmi5.prototype.terminate = function () {
    if (this.terminated || !this.launchData) return Promise.resolve();
    var p = this.send("terminated", { duration: isoDuration(Date.now() - this.startedAt) }, true);
    this.terminated = true;
    return p;
  };

  Cmi5.prototype.returnUrl = function () {
    return (this.launchData && this.launchData.returnURL) || "";
  };

  global.Cmi5 = Cmi5;
  global.Cmi5.isoDuration = isoDuration;
})(window);

/*
 * scorm2004.js - a small wrapper around the SCORM 2004 (4th edition) run-time API.
 * Part of "Battery safety for electric-vehicle technicians".
 * (c) lms_bridge contributors, licensed under CC BY 4.0 (see ../LICENCE.txt).
 *
 * API discovery follows SCORM 2004 4th edition RTE section 3.1.2 (and ADL's sample
 * algorithm): look for window.API_1484_11 in this window's parent chain, then in the
 * chain of the window that opened us (window.opener, and top.opener). A window of
 * another origin cannot be inspected; the search stops there.
 *
 * Without an LMS every call is a harmless no-op, so the pages still work on their own.
 */
(function (global) {
  "use strict";

  var MAX_DEPTH = 500;
  var api = null;
  var state = "not-started"; // "not-started" | "running" | "terminated"
  var startedAt = null;

  function apiIn(win) {
    try {
      return win && win.API_1484_11 ? win.API_1484_11 : null;
    } catch (e) {
      return null; // another origin
    }
  }

  function searchChain(win) {
    var depth = 0;
    while (win && depth <= MAX_DEPTH) {
      var found = apiIn(win);
      if (found) return found;
      var parent;
      try {
        parent = win.parent;
      } catch (e) {
        return null;
      }
      if (!parent || parent === win) return null;
      win = parent;
      depth += 1;
    }
    return null;
  }

  function findAPI() {
    var found = searchChain(global);
    if (!found) {
      try {
        if (global.opener) found = searchChain(global.opener);
      } catch (e) { /* opener of another origin */ }
    }
    if (!found) {
      try {
        if (global.top && global.top.opener) found = searchChain(global.top.opener);
      } catch (e) { /* idem */ }
    }
    return found;
  }

  /* ISO 8601 duration for cmi.session_time, e.g. PT1H2M3.5S (RTE 4.1.1.6, timeinterval). */
  function isoDuration(ms) {
    var centis = Math.max(0, Math.round(ms / 10));
    var h = Math.floor(centis / 360000);
    var m = Math.floor((centis % 360000) / 6000);
    var s = (centis % 6000) / 100;
    return "PT" + (h ? h + "H" : "") + (m ? m + "M" : "") + s.toFixed(2).replace(/\.?0+$/, "") + "S";
  }

  var SCORM = {
    /* Find the API and call Initialize(""). Returns true when connected to an LMS. */
    start: function () {
      if (state !== "not-started") return api !== null;
      startedAt = Date.now();
      api = findAPI();
      if (!api) {
        state = "running";
        return false;
      }
      var ok = String(api.Initialize("")) === "true";
      if (!ok) {
        api = null; // behave as stand-alone rather than failing every later call
      }
      state = "running";
      return ok;
    },

    connected: function () {
      return api !== null && state === "running";
    },

    get: function (element) {
      if (!SCORM.connected()) return "";
      return String(api.GetValue(element));
    },

    set: function (element, value) {
      if (!SCORM.connected()) return false;
      return String(api.SetValue(element, String(value))) === "true";
    },

    commit: function () {
      if (!SCORM.connected()) return false;
      return String(api.Commit("")) === "true";
    },

    /* Error code and text of the last call, for the status line. */
    lastError: function () {
      if (!api) return "";
      var code = String(api.GetLastError());
      return code === "0" ? "" : code + " " + String(api.GetErrorString(code));
    },

    /* Record the session time and exit mode, commit, and Terminate(""). Runs once. */
    finish: function (exitMode) {
      if (state !== "running") return;
      if (api) {
        SCORM.set("cmi.session_time", isoDuration(Date.now() - startedAt));
        SCORM.set("cmi.exit", exitMode || "suspend");
        api.Commit("");
        api.Terminate("");
      }
      state = "terminated";
    },

    isoDuration: isoDuration
  };

  global.SCORM = SCORM;
})(window);

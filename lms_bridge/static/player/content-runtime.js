/*
 * The SCORM run-time, on the content origin (lms_bridge/player/runtime.py): scorm-again (vendored,
 * static/vendor/scorm-again) exposes window.API (SCORM 1.2) or window.API_1484_11 (SCORM 2004) on
 * this page, and the SCO is loaded in a child frame of the same origin, so its API discovery
 * (walking window.parent) finds it. Commits go to the tool's commit endpoint, cross-origin, with
 * the per-attempt commit token (the only secret this page ever holds).
 *
 * This page has no configuration of its own: it asks its parent (the player page, on the tool's
 * origin, named by data-tool-origin) with a "lms_bridge.runtime.ready" message, and accepts one
 * "lms_bridge.runtime.config" answer, from that window and that origin only.
 *
 * Every commit carries {token, session, seq, cmi}: the runtime session number the server gave
 * this launch, and a sequence number that grows with every commit of the page, so the server
 * ignores any late, older commit.
 */
(function () {
  "use strict";
  var root = document.documentElement;
  var toolOrigin = root.getAttribute("data-tool-origin");
  var attempt = root.getAttribute("data-attempt");
  var activity = root.getAttribute("data-activity");
  var version = root.getAttribute("data-version");
  var configured = false;
  var seq = 0;

  function tell(message) {
    // Only ever to the player page, on the tool's origin.
    try { window.parent.postMessage(message, toolOrigin); } catch (e) { /* no parent */ }
  }

  function sameOriginContent(url) {
    try {
      var u = new URL(url, window.location.href);
      return u.origin === window.location.origin && u.pathname.indexOf("/content/") === 0 ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function onTool(url) {
    try {
      return new URL(url).origin === toolOrigin;
    } catch (e) {
      return false;
    }
  }

  function start(cfg, scoUrl) {
    var settings = {
      autocommit: true,
      autocommitSeconds: 5,
      lmsCommitUrl: cfg.commitUrl,
      dataCommitFormat: "json",
      sendFullCommit: true,
      logLevel: 4,
      xhrWithCredentials: false,
      xhrHeaders: { Authorization: "Bearer " + cfg.token },
      // The commit sent on Terminate is a sendBeacon: no headers (and a CORS-safelisted type, as
      // beacons cannot be preflighted), so the token is in the body too.
      terminationCommitContentType: "text/plain;charset=UTF-8",
      requestHandler: function (commitObject) {
        seq += 1;
        var cmi = commitObject && commitObject.cmi ? commitObject.cmi : commitObject;
        return { token: cfg.token, session: cfg.session, seq: seq, cmi: cmi };
      },
      xhrResponseHandler: function (xhr) {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300 && body && body.result) {
          if (body.events && body.events.length) tell({ type: "lms_bridge.runtime.committed" });
          return { result: "true", errorCode: 0 };
        }
        tell({ type: "lms_bridge.runtime.error", status: xhr.status || 0 });
        return { result: "false", errorCode: 101 };
      }
    };

    var api;
    if (cfg.version === "scorm12") {
      api = new window.Scorm12API(settings);
      api.loadFromFlattenedJSON(cfg.cmi);
      window.API = api;
    } else {
      api = new window.Scorm2004API(settings);
      api.loadFromFlattenedJSON(cfg.cmi);
      window.API_1484_11 = api;
    }
    ["LMSFinish", "Terminate"].forEach(function (name) {
      try { api.on(name, function () { tell({ type: "lms_bridge.runtime.terminated" }); }); } catch (e) { /* older runtimes */ }
    });

    // The API exists: now the SCO may load and look for it.
    var frame = document.createElement("iframe");
    frame.id = "sco-frame";
    frame.title = cfg.title || "Activity";
    frame.setAttribute("allow", "fullscreen; autoplay");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.src = scoUrl;
    var waiting = document.getElementById("runtime-waiting");
    if (waiting) waiting.hidden = true;
    document.body.appendChild(frame);
  }

  window.addEventListener("message", function (event) {
    if (configured || event.source !== window.parent || event.origin !== toolOrigin) return;
    var data = event.data;
    if (!data || data.type !== "lms_bridge.runtime.config" || !data.config) return;
    var cfg = data.config;
    var scoUrl = sameOriginContent(cfg.scoUrl);
    if (String(cfg.attempt) !== attempt || cfg.activity !== activity || cfg.version !== version ||
        !scoUrl || !onTool(cfg.commitUrl) || typeof cfg.token !== "string") {
      tell({ type: "lms_bridge.runtime.error", status: 0 });
      return;
    }
    configured = true;
    start(cfg, scoUrl);
  });

  // Ask the player for the configuration until it answers (its script may start after this one).
  var asked = 0;
  (function ask() {
    if (configured || asked >= 100) return;
    asked += 1;
    tell({ type: "lms_bridge.runtime.ready", attempt: attempt, activity: activity });
    setTimeout(ask, asked < 10 ? 100 : 500);
  })();
})();

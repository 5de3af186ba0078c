/*
 * The SCORM run-time for the player page: scorm-again (vendored, static/vendor/scorm-again)
 * exposes window.API (SCORM 1.2) or window.API_1484_11 (SCORM 2004) to the SCO in the content
 * frame, starts from the values the LMS provides (learner, entry, resume point, thresholds),
 * and commits the cmi data model to the progress API with the narrow commit token.
 *
 * Every commit carries {token, session, seq, cmi}: the runtime session number the server gave
 * this launch, and a sequence number that grows with every commit of the page, so the server
 * ignores any late, older commit.
 */
(function () {
  "use strict";
  var node = document.getElementById("scorm-config");
  if (!node) return;
  var cfg = JSON.parse(node.textContent);
  var frame = document.getElementById("content-frame");
  var status = document.getElementById("runtime-status");
  var seq = 0;

  function say(text) {
    if (status) status.textContent = text;
  }

  var settings = {
    autocommit: true,
    autocommitSeconds: 5,
    lmsCommitUrl: cfg.commitUrl,
    dataCommitFormat: "json",
    sendFullCommit: true,
    logLevel: 4,
    xhrHeaders: { Authorization: "Bearer " + cfg.token },
    // The commit sent on Terminate is a sendBeacon: no headers, so the token is in the body too.
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
        if (body.progress && window.LmsBridgePlayer) window.LmsBridgePlayer.showProgress(body.progress);
        return { result: "true", errorCode: 0 };
      }
      say((body && body.message) || "Your progress could not be saved (HTTP " + xhr.status + ").");
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
  window.LmsBridgeScorm = { api: api, config: cfg };

  // Keep the outline and the progress bar in step with what the SCO reports.
  var refresh = function () {
    if (window.LmsBridgePlayer) window.LmsBridgePlayer.refreshProgress();
  };
  ["LMSFinish", "Terminate"].forEach(function (name) {
    try { api.on(name, function () { setTimeout(refresh, 300); }); } catch (e) { /* older runtimes */ }
  });

  // The API exists: now the SCO may load and look for it.
  if (frame && frame.getAttribute("data-src")) frame.src = frame.getAttribute("data-src");
})();

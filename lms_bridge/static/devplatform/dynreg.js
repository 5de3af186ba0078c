// Dynamic Registration, platform side (LTI Dynamic Registration §3.7): when the tool's page in
// the frame posts {subject: "org.imsglobal.lti.close"}, close the frame and show the new tool.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("dp-dynreg-config").textContent);
  var frame = document.getElementById("dr-frame");
  var out = document.getElementById("dr-finished");

  function show(result) {
    out.textContent = "";
    var h = document.createElement("h2");
    h.textContent = "Registration finished";
    out.appendChild(h);
    var p = document.createElement("p");
    if (result.finished) {
      p.textContent = "New tool \"" + result.name + "\": client id " + result.client_id +
        ", deployment id " + result.deployment_id + ". ";
      var a = document.createElement("a");
      a.href = result.home_url;
      a.textContent = "Open the course with this tool";
      p.appendChild(a);
    } else {
      p.textContent = "The tool closed the registration without registering.";
    }
    out.appendChild(p);
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== cfg.toolOrigin || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || data.subject !== "org.imsglobal.lti.close") return;
    frame.remove();
    fetch(cfg.resultUrl, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(show, function () { show({ finished: false }); });
  });
})();

// Tool side of LTI Platform Storage (1EdTech "LTI Client Side postMessages" / Platform Storage):
// the state binding is kept by the platform's storage frame instead of a third-party cookie.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("lti-storage-config").textContent);
  var status = document.getElementById("status");

  function targetFrame() {
    var parent = window.opener || window.parent;
    if (!cfg.target || cfg.target === "_parent") return parent;
    try { return parent.frames[cfg.target] || parent; } catch (e) { return parent; }
  }

  function send(message, timeoutMs) {
    var id = "m" + Math.random().toString(36).slice(2) + Date.now().toString(36);
    message.message_id = id;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { window.removeEventListener("message", onMessage); reject(new Error("timeout")); }, timeoutMs);
      function onMessage(event) {
        if (event.origin !== cfg.platformOrigin) return;
        var data = event.data || {};
        if (data.message_id !== id || data.subject !== message.subject + ".response") return;
        clearTimeout(timer);
        window.removeEventListener("message", onMessage);
        if (data.error) reject(new Error(data.error.message || data.error.code || "error")); else resolve(data);
      }
      window.addEventListener("message", onMessage);
      targetFrame().postMessage(message, cfg.platformOrigin);
    });
  }

  if (cfg.mode === "put") {
    send({ subject: "lti.put_data", key: cfg.key, value: cfg.value }, 2500).then(
      function () { window.location.replace(cfg.next); },
      function () { window.location.replace(cfg.fallback); }  // no platform storage: bind with a cookie
    );
  } else {
    var form = document.getElementById(cfg.form);
    send({ subject: "lti.get_data", key: cfg.key }, 2500).then(
      function (data) { form.elements.binding.value = data.value || ""; form.submit(); },
      function () { if (status) status.textContent = "Your LMS did not answer; trying without it..."; form.submit(); }
    );
  }
})();

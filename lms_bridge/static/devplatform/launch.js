// Development platform launch page: start the LTI 1.3 OIDC login (Security Framework §5.1.1.1)
// once the Platform Storage frame is ready, and answer "lti.capabilities" from the tool
// (1EdTech LTI Client Side postMessages) with the subjects the storage frame supports.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("dp-launch-config").textContent);
  var form = document.getElementById("dp-login");
  var storageFrame = document.getElementById("post_message_forwarding");
  var status = document.getElementById("dp-status");

  window.addEventListener("message", function (event) {
    if (cfg.toolOrigins.indexOf(event.origin) === -1) return;
    var data = event.data;
    if (!data || typeof data !== "object" || !event.source) return;
    if (data.subject === "lti.capabilities" || data.subject === "org.imsglobal.lti.capabilities") {
      var supported = [{ subject: "lti.capabilities" }];
      if (cfg.storage) {
        supported.push({ subject: "lti.put_data", frame: "post_message_forwarding" });
        supported.push({ subject: "lti.get_data", frame: "post_message_forwarding" });
      }
      event.source.postMessage({ subject: data.subject + ".response", message_id: data.message_id,
                                 supported_messages: supported }, event.origin);
    }
  });

  var started = false;
  function start() {
    if (started) return;
    started = true;
    form.submit();
    if (status) {
      status.textContent = cfg.window
        ? "The tool opened in a new window. If nothing opened, use the button."
        : "The tool is open below.";
    }
  }

  function storageReady() {
    try { return storageFrame.contentWindow.dpStorageReady === true; } catch (e) { return false; }
  }

  if (!cfg.storage || storageReady()) {
    start();
  } else {
    storageFrame.addEventListener("load", start);
    setTimeout(start, 3000); // never wait forever for the storage frame
  }
})();

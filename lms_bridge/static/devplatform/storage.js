// Platform side of LTI Platform Storage (1EdTech "LTI Client Side postMessages": lti.put_data,
// lti.get_data, lti.capabilities).  This frame is named "post_message_forwarding" on the launch
// page; it only answers the registered tool's origin, keeps values per origin (in memory and in
// this origin's sessionStorage, first-party because the launch page is the top-level document),
// and replies to event.source with the tool's origin as targetOrigin.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("dp-storage-config").textContent);
  var memory = {};
  var MAX_VALUE = 4096, MAX_KEYS = 500;

  function storageKey(origin, key) { return "lti_storage:" + origin + ":" + key; }

  function put(origin, key, value) {
    memory[storageKey(origin, key)] = value;
    try { sessionStorage.setItem(storageKey(origin, key), value); } catch (e) { /* memory still holds it */ }
  }

  function get(origin, key) {
    var k = storageKey(origin, key);
    if (Object.prototype.hasOwnProperty.call(memory, k)) return memory[k];
    try { var v = sessionStorage.getItem(k); return v === null ? undefined : v; } catch (e) { return undefined; }
  }

  function reply(event, message) { event.source.postMessage(message, event.origin); }

  function error(event, data, code, text) {
    reply(event, { subject: data.subject + ".response", message_id: data.message_id,
                   error: { code: code, message: text } });
  }

  window.addEventListener("message", function (event) {
    if (cfg.toolOrigins.indexOf(event.origin) === -1) return; // only the registered tool
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.subject !== "string" || !event.source) return;
    var subject = data.subject.replace(/^org\.imsglobal\./, "");
    if (subject === "lti.capabilities") {
      reply(event, { subject: data.subject + ".response", message_id: data.message_id, supported_messages: [
        { subject: "lti.capabilities" },
        { subject: "lti.put_data", frame: cfg.frame },
        { subject: "lti.get_data", frame: cfg.frame }
      ] });
    } else if (subject === "lti.put_data") {
      if (typeof data.key !== "string" || !data.key) return error(event, data, "bad_request", "key is required");
      if (typeof data.value !== "string") return error(event, data, "bad_request", "value must be a string");
      if (data.value.length > MAX_VALUE || Object.keys(memory).length >= MAX_KEYS) {
        return error(event, data, "storage_exhausted", "the platform storage is full");
      }
      put(event.origin, data.key, data.value);
      reply(event, { subject: data.subject + ".response", message_id: data.message_id, key: data.key, value: data.value });
    } else if (subject === "lti.get_data") {
      if (typeof data.key !== "string" || !data.key) return error(event, data, "bad_request", "key is required");
      var value = get(event.origin, data.key);
      if (value === undefined) return error(event, data, "bad_request", "there is no value stored for this key");
      reply(event, { subject: data.subject + ".response", message_id: data.message_id, key: data.key, value: value });
    } else if (/^lti\./.test(subject)) {
      error(event, data, "unsupported_subject", "unsupported subject " + data.subject);
    }
  });
  window.dpStorageReady = true;
})();

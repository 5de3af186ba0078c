// LTI Dynamic Registration §3.7: tell the platform window that registration is over.
(function () {
  function close() {
    (window.opener || window.parent).postMessage({ subject: "org.imsglobal.lti.close" }, "*");
  }
  document.getElementById("close").addEventListener("click", close);
})();

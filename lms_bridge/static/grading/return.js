// Deep Linking 2.0 §4.5: hand the signed response to the platform at once; the button stays for
// browsers without JavaScript (and in case the submission is blocked).
(function () {
  "use strict";
  var form = document.getElementById("dl-return");
  if (form && !form.dataset.sent) {
    form.dataset.sent = "1";
    form.submit();
  }
})();

// OIDC form_post (OIDC Core §3.1.2.5 with response_mode=form_post): post the answer to the tool.
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosubmit]");
  if (form) form.submit();
})();

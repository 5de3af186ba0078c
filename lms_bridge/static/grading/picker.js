// The picker's selection form: only the fields of the chosen items are active (and validated), and
// a checkbox or radio change moves focus sensibly. Works without it: every item's fields are sent,
// and the server reads only the chosen ones.
(function () {
  "use strict";
  var form = document.getElementById("select-form");
  if (!form) { return; }
  var choices = form.querySelectorAll('input[name="item"]');

  function sync() {
    choices.forEach(function (choice) {
      var fields = document.getElementById("fields-" + choice.value);
      if (!fields) { return; }
      fields.hidden = !choice.checked;
      fields.querySelectorAll("input").forEach(function (input) { input.disabled = !choice.checked; });
    });
  }

  choices.forEach(function (choice) { choice.addEventListener("change", sync); });
  sync();
  var errors = document.getElementById("selection-errors");
  if (errors) { errors.focus(); }
})();

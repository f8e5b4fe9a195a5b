// mlflow-delta-lineage: a little progressive enhancement. Every page works without it.
(function () {
  "use strict";

  // The models page: filter the list while typing (the form's ?q= does it without script).
  function filterModels() {
    var box = document.getElementById("model-search");
    var table = document.getElementById("models");
    if (!box || !table) return;
    var empty = document.getElementById("no-match");
    box.addEventListener("input", function () {
      var text = box.value.trim().toLowerCase();
      var shown = 0;
      table.querySelectorAll("tbody tr").forEach(function (row) {
        var hit = row.getAttribute("data-name").indexOf(text) !== -1;
        row.hidden = !hit;
        if (hit) shown += 1;
      });
      if (empty) empty.hidden = shown !== 0;
    });
  }

  // Pickers (diff against, impact of): picking a value submits the form.
  function submitOnChange(id) {
    var select = document.getElementById(id);
    if (!select || !select.form) return;
    select.addEventListener("change", function () {
      if (select.value) select.form.submit();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    filterModels();
    submitOnChange("diff-with");
    submitOnChange("impact-version");
  });
})();

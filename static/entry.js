// Result entry grid: Enter moves down a column (Tab already moves right), and a block pasted
// from a spreadsheet into a cell goes to the paste form, applied from that cell. The grid works
// without this file: Enter then saves the whole form, and the paste form takes a block by hand.
(function () {
  "use strict";

  function grid() { return document.querySelector("table.entry-grid"); }

  function inputAt(row, col) {
    var rows = grid().tBodies[0].rows;
    if (row < 0 || row >= rows.length) { return null; }
    return rows[row].querySelector('input[data-entry-col="' + col + '"]');
  }

  function whereIs(input) {
    var tr = input.closest("tr");
    return { row: tr.sectionRowIndex, col: parseInt(input.dataset.entryCol, 10), td: input.closest("td") };
  }

  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (event.key !== "Enter" || !input.matches || !input.matches("table.entry-grid input[data-entry-col]")) { return; }
    event.preventDefault(); // not the whole form: the cell posts itself on change
    var here = whereIs(input);
    var next = inputAt(here.row + (event.shiftKey ? -1 : 1), here.col);
    if (next) { next.focus(); next.select(); } else { input.blur(); }
  });

  // After a cell comes back from the server, keep the focus where the analyst went.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    if (active && active.dataset && active.dataset.entryCol && event.detail.target.contains(active)) {
      event.detail.target.dataset.refocus = active.name;
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var name = event.detail.target && event.detail.target.dataset ? event.detail.target.dataset.refocus : null;
    if (name) {
      var again = document.querySelector('input[name="' + name + '"]');
      if (again) { again.focus(); }
    }
  });

  document.addEventListener("paste", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("table.entry-grid input[data-entry-col]")) { return; }
    var text = (event.clipboardData || window.clipboardData).getData("text");
    if (!/[\t\n]/.test(text.replace(/[\r\n]+$/, ""))) { return; } // one value: an ordinary paste
    var form = document.getElementById("paste-form");
    if (!form) { return; }
    event.preventDefault();
    var here = whereIs(input);
    form.querySelector("#paste-position").value = here.td.dataset.position;
    form.querySelector("#paste-column").value = String(here.col);
    form.querySelector("#paste-block").value = text;
    var at = document.getElementById("entry-measured-at");
    var when = form.querySelector('input[name="measured_at"]');
    if (at && when) { when.value = at.value; }
    var reason = document.getElementById("entry-reason");
    var why = form.querySelector('input[name="reason"]');
    if (reason && why) { why.value = reason.value; }
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  });
})();

// EnviroLIMS client glue: CSRF header on every htmx request; keyboard-wedge scan box focus.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
  });
  // F2 or "/" jumps to the scan box, so a scanner can be used without touching the mouse.
  document.addEventListener("keydown", function (event) {
    var box = document.querySelector(".scanbox input");
    if (!box) { return; }
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test((document.activeElement || {}).tagName || "");
    if (event.key === "F2" || (event.key === "/" && !typing)) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });
})();

// EnviroLIMS client glue. Every page works without it; it only makes htmx and the header nicer:
// CSRF header on htmx requests, busy buttons, refusals brought into
// view, the scan box on F2 or "/", and a menu that closes like a menu.
(function () {
  "use strict";

  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
  });

  // While a form is being sent, its submit buttons are busy (Pico shows a spinner) and disabled,
  // so a slow signature or save cannot be sent twice.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.tagName !== "FORM") { return; }
    form.querySelectorAll("button:not([type=button]), input[type=submit]").forEach(function (b) {
      if (!b.disabled) { b.disabled = true; b.setAttribute("aria-busy", "true"); b.dataset.limsBusy = "1"; }
    });
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.tagName !== "FORM") { return; }
    form.querySelectorAll("[data-lims-busy]").forEach(function (b) {
      b.disabled = false; b.removeAttribute("aria-busy"); delete b.dataset.limsBusy;
    });
  });

  // A refusal swapped into #messages may be far above the form on a phone: bring it into view.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "messages" && target.firstElementChild) {
      var box = target.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) {
        target.scrollIntoView({ block: "start", behavior: "smooth" });
      }
    }
  });

  // F2 or "/" jumps to the scan box, so a scanner can be used without touching the mouse.
  document.addEventListener("keydown", function (event) {
    var menu = document.querySelector("details.menu[open]");
    if (event.key === "Escape" && menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
      return;
    }
    var box = document.querySelector(".scanbox input");
    if (!box) { return; }
    var active = document.activeElement || {};
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName || "") || active.isContentEditable;
    if (event.key === "F2" || (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey)) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });

  // The header menu closes when one clicks elsewhere.
  document.addEventListener("click", function (event) {
    var menu = document.querySelector("details.menu[open]");
    if (menu && !menu.contains(event.target)) { menu.open = false; }
  });
})();

// Lanyard console behaviour. Static, no eval, no inline handlers (the CSP forbids both):
// everything hooks in through addEventListener and data- attributes.
(function () {
  "use strict";

  // htmx requests carry the session's CSRF token as a header.
  document.addEventListener("htmx:configRequest", function (ev) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m) { ev.detail.headers["X-CSRF-Token"] = m.getAttribute("content"); }
  });

  // Forms with data-confirm ask before submitting (lock, unlock, schedule offboarding).
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    var msg = f.getAttribute && f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  }, true);

  // The wipe form's button stays disabled until the typed serial matches. The server
  // checks it again; this only saves a round trip.
  function wireTypedConfirm(root) {
    root.querySelectorAll("input[data-must-equal]").forEach(function (input) {
      var form = input.form;
      var button = form && form.querySelector("button[type=submit]");
      if (!button) { return; }
      var check = function () {
        button.disabled = input.value.trim().toUpperCase() !== input.getAttribute("data-must-equal").toUpperCase();
      };
      input.addEventListener("input", check);
      check();
    });
  }

  // Elements with data-autosubmit submit their form when changed (filters, without a click).
  function wireAutosubmit(root) {
    root.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () {
        if (el.form && !el.form.hasAttribute("hx-get")) { el.form.requestSubmit(); }
      });
    });
  }

  function wire(root) { wireTypedConfirm(root); wireAutosubmit(root); }
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSwap", function (ev) { wire(ev.target); });
})();

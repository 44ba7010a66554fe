// Cleave Boutique: progressive enhancement only. Every form works without this file; it is
// loaded with `defer` from our own origin, so a strict `script-src 'self'` CSP is enough.
(function () {
  "use strict";

  // Lets the stylesheet tuck away the currency "Change" button (it reappears on focus).
  document.documentElement.classList.add("js");

  // Submit the currency switcher as soon as a new currency is picked.
  var selects = document.querySelectorAll("select[data-autosubmit]");
  Array.prototype.forEach.call(selects, function (select) {
    select.addEventListener("change", function () {
      var form = select.form;
      if (!form) {
        return;
      }
      if (typeof form.requestSubmit === "function") {
        form.requestSubmit();
      } else {
        form.submit();
      }
    });
  });
})();

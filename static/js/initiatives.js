/* The initiative pages' step and PDSA forms: a refused step comes back as the form with the
   service's message and a 4xx status; htmx would not swap an error response, so forms that
   ask for it (data-swap-errors) get it swapped in place. No inline script (the CSP). */
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    var form = elt && elt.closest ? elt.closest("[data-swap-errors]") : null;
    if (form && status >= 400 && status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();

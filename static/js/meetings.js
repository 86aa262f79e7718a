/* Meeting pages: the print button, and the focus after an agenda edit (the server marks the
   control that should have it with autofocus, e.g. the moved item's button), so keyboard
   and screen-reader users stay where they were. No inline script: the CSP forbids it. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    if (event.target.closest(".meeting-document button.print")) {
      window.print();
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var root = event.detail && event.detail.elt ? event.detail.elt : document;
    var target = root.querySelector ? root.querySelector("[autofocus]") : null;
    if (!target && root.ownerDocument) {
      target = root.ownerDocument.querySelector("#agenda [autofocus]");
    }
    if (target && document.activeElement !== target) {
      target.focus();
    }
  });
})();

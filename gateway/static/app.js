// RoofCRM web UI: what every page needs. Pages add their own small scripts.
(function () {
  "use strict";
  // Requests made by scripts (htmx, drag and drop) carry the session's CSRF token as a header;
  // plain forms carry it as a hidden field (gateway/pages.py checks either).
  function csrf() { return document.body.dataset.csrf || ""; }
  window.crm = {
    csrf: csrf,
    // POST a form-encoded body to a page endpoint; resolves with the Response.
    post: function (url, data) {
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: {"X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded"},
        body: new URLSearchParams(data || {}).toString()
      });
    },
    toast: function (html, ms) {
      var box = document.getElementById("toasts");
      if (!box) { return null; }
      var el = document.createElement("div");
      el.className = "toast";
      el.innerHTML = html;
      box.appendChild(el);
      if (ms) { setTimeout(function () { el.remove(); }, ms); }
      return el;
    }
  };
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrf();
  });
})();

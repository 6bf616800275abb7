/* RoofCRM web form: draws the form where this script is included and posts it (no CDN). */
(function () {
  "use strict";
  var cfg = {{ config }};
  var here = document.currentScript;
  var box = document.createElement("div");
  box.className = "roofcrm-form";
  var form = document.createElement("form");
  form.noValidate = true;
  var title = document.createElement("h3");
  title.textContent = cfg.name;
  form.appendChild(title);
  function field(name, type) {
    var label = document.createElement("label");
    label.textContent = cfg.labels[name] || name;
    label.style.display = "block";
    var input = document.createElement(type === "textarea" ? "textarea" : "input");
    if (type !== "textarea") { input.type = type; }
    input.name = name;
    input.style.display = "block";
    label.appendChild(input);
    form.appendChild(label);
  }
  [["name", "text"], ["company", "text"], ["inn", "text"], ["phone", "tel"],
   ["email", "email"], ["message", "textarea"]].forEach(function (f) { field(f[0], f[1]); });
  var hp = document.createElement("input");
  hp.name = cfg.honeypot; hp.tabIndex = -1; hp.autocomplete = "off";
  hp.setAttribute("aria-hidden", "true");
  hp.style.position = "absolute"; hp.style.left = "-10000px";
  form.appendChild(hp);
  if (cfg.consentRequired) {
    var consent = document.createElement("label");
    var box2 = document.createElement("input");
    box2.type = "checkbox"; box2.name = "consent"; box2.value = "on";
    consent.appendChild(box2);
    consent.appendChild(document.createTextNode(" " + (cfg.consentText || "")));
    form.appendChild(consent);
  }
  var status = document.createElement("p");
  status.setAttribute("role", "status");
  var button = document.createElement("button");
  button.type = "submit"; button.textContent = "Отправить";
  form.appendChild(button);
  form.appendChild(status);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var data = new URLSearchParams(new FormData(form));
    data.set("form_token", cfg.token);
    var params = new URLSearchParams(window.location.search);
    ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"].forEach(function (k) {
      if (params.get(k)) { data.set(k, params.get(k)); }
    });
    data.set("page_url", window.location.href);
    if (document.referrer) { data.set("referrer", document.referrer); }
    button.disabled = true;
    fetch(cfg.action, {method: "POST", body: data}).then(function (r) {
      return r.json().then(function (body) { return {status: r.status, body: body}; });
    }).then(function (res) {
      button.disabled = false;
      if (res.status === 202) {
        form.reset();
        status.textContent = "Спасибо, заявка принята";
      } else if (res.body && res.body.errors) {
        status.textContent = res.body.errors.map(function (e) {
          return (cfg.labels[e.field] || e.field) + ": " + e.reasons.join(", ");
        }).join("; ");
      } else {
        status.textContent = (res.body && res.body.detail) || "Не удалось отправить заявку";
      }
    }).catch(function () {
      button.disabled = false;
      status.textContent = "Не удалось отправить заявку: проверьте соединение";
    });
  });
  box.appendChild(form);
  here.parentNode.insertBefore(box, here.nextSibling);
})();

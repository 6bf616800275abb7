// RoofCRM manager pages: the incoming-call screen pop (every manager page) and the desk's live
// KPI widget. Both are Server-Sent Event streams of the gateway, authorised by the page's cookie
// session (EventSource sends cookies to its own origin; no token in the page).
(function () {
  "use strict";
  var labels = document.getElementById("live-labels");
  if (!labels) { return; }

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text) { node.textContent = text; }
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function popToast(data) {
    var box = document.createElement("div");
    box.className = "pop";
    box.dataset.callKey = data.call_key || "";
    var head = el("div");
    head.appendChild(el("strong", labels.dataset.calling + " "));
    head.appendChild(el("span", data.external_number || "", {"data-f": "number"}));
    box.appendChild(head);
    if (data.unknown) {
      var line = el("div", labels.dataset.unknown + " — ");
      var lead = el("a", labels.dataset.lead, {
        href: "/clients/new?phone=" + encodeURIComponent(data.external_number || ""),
        "data-f": "lead"});
      line.appendChild(lead);
      box.appendChild(line);
    } else if (data.client) {
      var card = el("div");
      card.appendChild(el("a", data.client.short_name || labels.dataset.open,
                          {href: "/clients/" + data.client.id, "data-f": "client"}));
      var facts = [];
      if (data.client.inn) { facts.push(labels.dataset.inn + " " + data.client.inn); }
      if (data.client.owner_name) { facts.push(labels.dataset.owner + ": " + data.client.owner_name); }
      if (facts.length) { card.appendChild(el("div", facts.join(" · "), {"class": "muted"})); }
      box.appendChild(card);
    }
    var toast = window.crm.toast("", 60000);
    if (toast) { toast.classList.add("screen-pop"); toast.appendChild(box); }
  }

  // The streams open once the page has loaded: a page is "loaded" for good, whatever the
  // streams do later.
  function afterLoad(start) {
    if (document.readyState === "complete") { setTimeout(start, 0); }
    else { window.addEventListener("load", function () { setTimeout(start, 0); }); }
  }

  if (labels.dataset.screenPop && window.EventSource) { afterLoad(function () {
    var pop = new EventSource(labels.dataset.screenPop);
    pop.addEventListener("ringing", function (e) {
      try { popToast(JSON.parse(e.data)); } catch (err) { /* a malformed frame: skip it */ }
    });
    document.body.dataset.screenPop = "connecting";
    pop.addEventListener("open", function () { document.body.dataset.screenPop = "open"; });
  }); }

  // The desk's KPI widget: figures update in place whenever payroll moves them.
  var widget = document.getElementById("kpi-widget");
  if (widget && widget.dataset.stream && window.EventSource) { afterLoad(function () {
    var kpi = new EventSource(widget.dataset.stream);
    var dot = document.getElementById("kpi-live");
    kpi.addEventListener("open", function () { if (dot) { dot.classList.add("on"); } });
    kpi.addEventListener("error", function () { if (dot) { dot.classList.remove("on"); } });
    kpi.addEventListener("kpi", function (e) {
      var data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      (data.kpis || []).forEach(function (k) {
        var row = widget.querySelector('tr[data-kpi="' + k.kpi + '"]');
        if (!row) { return; }
        var cells = row.querySelectorAll("td");
        // As the server renders them (ui/manager_common.py number): "1 100 000", "18,5".
        var show = function (v) {
          return v == null ? "—" : Number(v).toLocaleString("ru-RU", {maximumFractionDigits: 3});
        };
        cells[1].textContent = show(k.plan);
        cells[2].textContent = show(k.fact);
        cells[3].textContent = show(k.fulfilment);
      });
    });
  }); }
})();

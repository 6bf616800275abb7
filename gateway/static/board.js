// The funnel board: drag a deal card to another manual stage (HTML5 drag and drop). Stages the 1C
// documents drive are locked: the board refuses to drop into them or drag out of them, and so
// does the server (its message is shown). On any refusal the card returns to where it was.
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) { return; }
  var dragged = null;
  var origin = null;

  function column(node) { return node && node.closest ? node.closest(".column") : null; }
  function locked(col) { return col && col.dataset.locked === "true"; }
  function toast(text) { if (window.crm) { window.crm.toast(text.replace(/</g, "&lt;"), 6000); } }

  function moneyText(value) {
    var n = Number(value || 0);
    return n.toLocaleString("ru-RU", {minimumFractionDigits: 2, maximumFractionDigits: 2}) + "\u00a0₽";
  }

  function recount(col, deltaCount, deltaAmount) {
    var count = col.querySelector("[data-count]");
    var sum = col.querySelector("[data-sum]");
    if (count) { count.textContent = String(Number(count.textContent) + deltaCount); }
    if (sum) {
      var current = Number(col.dataset.amount || 0);
      col.dataset.amount = String(current + deltaAmount);
      sum.textContent = moneyText(col.dataset.amount);
    }
  }

  board.addEventListener("dragstart", function (e) {
    var card = e.target.closest && e.target.closest(".deal-card");
    if (!card) { return; }
    if (locked(column(card))) {
      e.preventDefault();
      toast(board.dataset.lockedOutMsg);
      return;
    }
    dragged = card;
    origin = column(card);
    card.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.dataset.deal);
  });

  board.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    board.querySelectorAll(".column.over, .column.refuse").forEach(function (c) {
      c.classList.remove("over", "refuse");
    });
  });

  board.addEventListener("dragover", function (e) {
    var col = column(e.target);
    if (!dragged || !col || col === origin) { return; }
    e.preventDefault();   // the drop event comes, also on a locked column: it says why not
    e.dataTransfer.dropEffect = "move";
    col.classList.add(locked(col) ? "refuse" : "over");
  });

  board.addEventListener("dragleave", function (e) {
    var col = column(e.target);
    if (col && !col.contains(e.relatedTarget)) { col.classList.remove("over", "refuse"); }
  });

  board.addEventListener("drop", function (e) {
    var col = column(e.target);
    if (!dragged || !col) { return; }
    e.preventDefault();
    col.classList.remove("over", "refuse");
    if (col === origin) { return; }
    if (locked(col)) { toast(board.dataset.lockedMsg); return; }
    move(dragged, origin, col);
  });

  function move(card, from, to) {
    var amount = Number(card.dataset.amount || 0);
    var placeholder = to.querySelector(".cards .empty");
    if (placeholder) { placeholder.remove(); }
    to.querySelector(".cards").prepend(card);
    recount(from, -1, -amount);
    recount(to, 1, amount);
    card.classList.add("saving");
    var url = board.dataset.moveUrl.replace("{id}", card.dataset.deal);
    window.crm.post(url, {stage: to.dataset.stage, version: card.dataset.version})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          return {ok: response.ok, body: body};
        });
      })
      .then(function (result) {
        card.classList.remove("saving");
        if (result.ok) {
          card.dataset.version = result.body.version;
          card.dataset.stage = result.body.stage;
          card.classList.add("moved");
          return;
        }
        back(card, from, to, amount);
        toast(result.body.message || board.dataset.failedMsg);
      })
      .catch(function () {
        card.classList.remove("saving");
        back(card, from, to, amount);
        toast(board.dataset.failedMsg);
      });
  }

  function back(card, from, to, amount) {
    from.querySelector(".cards").prepend(card);
    recount(to, -1, -amount);
    recount(from, 1, amount);
  }
})();

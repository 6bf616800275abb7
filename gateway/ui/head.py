"""The sales head's pages: reports with charts, the hand-over wizard, the department's pool and
reservations, and the salary documents to approve. A mixin of ``GatewayService``.

Every page calls the services over RPC with the caller's identity; the services decide what the
caller may see and do (a sales head: the own department, a director: everything) — these pages
only shape the forms. A service's refusal of a form (``DomainError`` with ``fields``) is shown on
the form, next to the fields it names, instead of an error page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from crm_platform.errors import DomainError

from ..pages import page, see_other
from ..routes.clients_ops import file_response
from .base import HEADS, MANAGERS, ui_render
from .charts import MOSCOW, Series, bar_chart, figure, money, moscow, number
from .i18n import language_of, translator

# -- reports ------------------------------------------------------------------------------------
PERIODS = (("day", "День"), ("week", "Неделя"), ("month", "Месяц"), ("quarter", "Квартал"),
           ("year", "Год"), ("custom", "Свой период"))
GROUP_TITLES = {"day": "по дням", "week": "по неделям", "month": "по месяцам",
                "quarter": "по кварталам", "year": "по годам", "manager": "по менеджерам",
                "department": "по отделам", "region": "по регионам", "segment": "по сегментам",
                "client": "по клиентам", "source": "по источникам", "stage": "по этапам",
                "campaign": "по кампаниям", "kind": "по документам"}
# The parameters a report page passes on to the reports service (the rest of the query is ours).
REPORT_PARAMS = ("period", "date", "date_from", "date_to", "manager_id", "department_id",
                 "group_by", "days", "status", "region", "segment")
# What each report draws: the figures shown as bars (the rest of the catalogue is tables only).
CHARTS = {
    "calls": ("calls", "answered", "missed"),
    "new_leads": ("leads",),
    "stage_time": ("median_hours", "p75_hours"),
    "funnel": ("deals",),
    "new_clients": ("created",),
    "invoices": ("invoiced_amount",),
    "sales": ("ordered_amount", "paid_amount", "shipped_amount"),
    "forecast": ("pipeline", "weighted", "plan"),
    "activity": ("calls", "tasks_done", "tasks_overdue"),
}
# The reports shown first (the four), then the catalogue's order.
FIRST = ("calls", "funnel", "stage_time", "forecast")
STAGE_TITLES = {
    "new": "Новый интерес", "qualified": "Квалифицирован", "proposal": "Коммерческое предложение",
    "order_confirmed": "Заказ подтверждён", "invoiced": "Счёт выставлен",
    "partially_shipped": "Частично отгружено", "shipped": "Отгружено",
    "closed_won": "Успешно закрыта", "lost": "Проиграна", "won_rate": "Доля выигранных",
}
GROUP_KEYS = ("period_start", "manager", "department", "region", "segment", "client", "source",
              "kind", "stage", "campaign")

# -- salary documents ---------------------------------------------------------------------------
DOCUMENT_STATES = {"draft": ("Черновик", "yellow"), "confirmed": ("Подтверждён", "blue"),
                   "approved": ("Утверждён", "green"), "exported": ("Выгружен", "green")}
DOCUMENT_ACTIONS = ("confirm", "approve", "return", "recompute")

POOL_PAGE = 50


def moscow_today() -> date:
    return datetime.now(UTC).astimezone(MOSCOW).date()


def report_params(args) -> dict:
    """The report's parameters from the page's query: only the known ones, empty ones left out
    (the reports service checks their values and names the field at fault)."""
    return {key: args.get(key).strip() for key in REPORT_PARAMS
            if args.get(key) and args.get(key).strip()}


def period_label(value: str, bucket: str | None) -> str:
    """A time bucket's start as a chart label: 05.10 (day, week), 10.2026 (month), 2026 (year),
    "I кв. 2026" (quarter)."""
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    if bucket == "month":
        return day.strftime("%m.%Y")
    if bucket == "year":
        return str(day.year)
    if bucket == "quarter":
        return f"{('I', 'II', 'III', 'IV')[(day.month - 1) // 3]} кв. {day.year}"
    return day.strftime("%d.%m")


def cell(row: dict, key: str, kinds: dict, bucket: str | None) -> str:
    """One table cell of a report row, formatted by the column's kind."""
    value = row.get(key)
    if key == "period_start":
        return moscow(value, with_time=False) if bucket in (None, "day", "week") \
            else period_label(value, bucket)
    if key == "stage":
        return STAGE_TITLES.get(value, value or "—")
    if key in GROUP_KEYS:
        return "—" if value in (None, "") else str(value)
    return figure(value, kinds.get(key, "text"))


def row_label(row: dict, group_keys: list[str], bucket: str | None) -> str:
    parts = []
    for key in group_keys:
        value = row.get(key)
        if key == "period_start":
            parts.append(period_label(value, bucket))
        elif key == "stage":
            parts.append(STAGE_TITLES.get(value, value or "—"))
        else:
            parts.append("—" if value in (None, "") else str(value))
    return " · ".join(parts) or "Итого"


def report_chart(report: dict, kinds: dict, titles: dict, bucket: str | None, _):
    """The SVG chart of a report (None when the report is a list, not figures)."""
    measures = [m for m in CHARTS.get(report["report"], ()) if m in kinds]
    if not measures:
        return None
    group_keys = [c["key"] for c in report["columns"] if c["key"] in GROUP_KEYS]
    rows = report["rows"]
    if report["report"] == "funnel":
        rows = [r for r in rows if r.get("stage") != "won_rate"]
    labels = [row_label(r, group_keys, bucket) for r in rows]
    series = [Series(_(titles.get(m, m)), tuple(r.get(m) or 0 for r in rows)) for m in measures]
    return bar_chart(_(report["title"]), labels, series, kind=kinds[measures[0]],
                     chart_id=f"chart-{report['report']}", empty=_("Нет данных за период"))


def split_counts(total: int, receivers: list[str]) -> dict[str, int]:
    """How many of ``total`` clients each receiver gets when the clients service deals them
    round-robin over the receivers in the given order (counts differ by at most one)."""
    if not receivers:
        return {}
    base, extra = divmod(total, len(receivers))
    return {r: base + (1 if i < extra else 0) for i, r in enumerate(receivers)}


def month_start(value: str | None) -> date:
    """``2026-11`` (or a full date) -> the first day of that month; else this Moscow month."""
    if value:
        try:
            return date.fromisoformat(value[:7] + "-01")
        except ValueError:
            pass
    return moscow_today().replace(day=1)


def field_errors(exc: DomainError) -> dict[str, str]:
    """A service's field reasons as one text per field (the form shows it under the field);
    nested reasons (marshmallow's ``{"bonus": {"tiers": {0: {"rate": [...]}}}}``) under dotted
    names, ``bonus.tiers.0.rate``, as the HTTP API names them."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            flat[prefix] = "; ".join(value)
        elif isinstance(value, list):
            for inner in value:
                walk(prefix, inner)
        else:
            flat[prefix] = str(value)

    walk("", exc.fields or {})
    return flat


class HeadPages:
    """``/head/...``: a mixin of ``GatewayService`` (uses ``directory`` and ``services``)."""

    # -- helpers ----------------------------------------------------------------------------------
    def _head_people(self, session, roles=("manager", "sales_head")) -> list[dict]:
        """The people a page may choose from: the own department (sales head, manager), else
        everyone in a selling role."""
        department = session.identity.department_id
        if session.identity.role in ("sales_head", "manager") and department:
            people = self.directory.list_users(department_id=department)
        else:
            people = self.directory.list_users()
        return [p for p in people if p["role"] in roles]

    # -- reports ----------------------------------------------------------------------------------
    @page("GET", "/head/reports", roles=HEADS)
    def head_reports(self, request, session):
        """The catalogue of reports; the issue's four first."""
        error = None
        try:
            catalogue = self._report_catalogue()
        except DomainError as exc:
            catalogue, error = [], exc.detail or exc.title
        return ui_render(request, "app/head/reports.html", session, active="reports",
                         catalogue=catalogue, error=error)

    def _report_catalogue(self) -> list[dict]:
        items = self.services("reports").list_reports()
        order = {name: i for i, name in enumerate(FIRST)}
        return sorted(items, key=lambda r: order.get(r["name"], len(FIRST)))

    @page("GET", "/head/reports/<name>", roles=HEADS)
    def head_report(self, request, session, name):
        """One report: filters, a chart of its figures, the table (the chart's data) and the
        CSV/XLSX downloads of the same rows."""
        _ = translator(language_of(request))
        try:
            catalogue = self._report_catalogue()
        except DomainError as exc:
            return ui_render(request, "app/head/reports.html", session, active="reports",
                             catalogue=[], error=exc.detail or exc.title, status=exc.status)
        definition = next((r for r in catalogue if r["name"] == name), None)
        if definition is None:
            return ui_render(request, "app/head/reports.html", session, active="reports",
                             catalogue=catalogue, status=404,
                             error=_("Нет такого отчёта: {name}", name=name))
        params = report_params(request.args)
        params.setdefault("period", "month")
        report, errors, error = None, {}, None
        try:
            report = self.services("reports").get_report(name, params)
        except DomainError as exc:
            errors, error = field_errors(exc), exc.detail or exc.title
        kinds = {c["key"]: c.get("kind", "int") for c in definition["columns"]}
        titles = {c["key"]: c["title"] for c in definition["columns"]}
        group_by = report["params"]["group_by"] if report else []
        bucket = next((g for g in group_by if g in ("day", "week", "month", "quarter", "year")),
                      None)
        chart = report_chart(report, kinds, titles, bucket, _) if report else None
        rows = []
        if report:
            keys = [c["key"] for c in report["columns"]]
            rows = [[(cell(r, k, kinds, bucket), k in kinds) for k in keys]
                    for r in report["rows"]]
            totals = [(figure(report["totals"].get(k), kinds[k])
                       if k in kinds and k in report["totals"] else "", k in kinds)
                      for k in keys]
        else:
            totals = []
        department = session.identity.department_id
        departments = [] if session.identity.role == "sales_head" \
            else self.directory.list_departments()
        managers = self._head_people(session)
        if params.get("department_id") and session.identity.role != "sales_head":
            managers = [m for m in managers if m["department_id"] == params["department_id"]]
        export_query = urlencode(params)
        return ui_render(
            request, "app/head/report.html", session, active="reports", catalogue=catalogue,
            definition=definition, report=report, chart=chart, rows=rows, totals=totals,
            params=params, errors=errors, error=error, periods=PERIODS, moscow=moscow,
            group_titles=GROUP_TITLES, departments=departments, managers=managers,
            own_department=department, export_query=export_query, group_by=group_by)

    @page("GET", "/head/reports/<name>/export", roles=HEADS)
    def head_report_export(self, request, session, name):
        """The report as a CSV or XLSX download (the reports service renders the file)."""
        fmt = request.args.get("format", "csv")
        params = report_params(request.args)
        return file_response(self.services("reports").export_report(
            name, params, fmt if fmt in ("csv", "xlsx") else "csv"))

    # -- hand-over wizard -------------------------------------------------------------------------
    @page("GET", "/head/handover", roles=HEADS)
    def head_handover(self, request, session):
        """Step 1: the leaving manager; step 2 (``from`` chosen): their clients and open deals,
        the receivers and which clients; step 3 (``preview``): who gets how many."""
        people = self._head_people(session)
        giver_id = request.args.get("from") or ""
        giver = next((p for p in people if p["id"] == giver_id), None)
        context = {"people": people, "giver": giver, "errors": {}, "error": None,
                   "form": request.args}
        if giver is not None:
            context.update(self._handover_counts(giver_id, request.args))
            receivers = request.args.getlist("to")
            context["receivers"] = [p for p in people if p["id"] in receivers]
            if request.args.get("preview"):
                if not receivers:
                    context["errors"] = {"to_user_ids": "Выберите хотя бы одного получателя"}
                else:
                    context["split"] = split_counts(context["clients_selected"],
                                                    [p["id"] for p in context["receivers"]])
        return ui_render(request, "app/head/handover.html", session, active="handover",
                         **context)

    def _handover_counts(self, giver_id: str, args) -> dict:
        clients = self.services("clients")
        selected = {k: args.get(k) for k in ("status", "segment", "region") if args.get(k)}
        everything = clients.list_clients({"owner_id": giver_id}, limit=1)["total"]
        chosen = clients.list_clients({"owner_id": giver_id, **selected}, limit=1)["total"] \
            if selected else everything
        deals = self.services("deals").list_deals({"owner_id": giver_id, "open": True},
                                                  limit=500)
        return {"clients_total": everything, "clients_selected": chosen,
                "open_deals": len(deals["items"]), "open_deals_more": bool(deals["next_cursor"])}

    @page("POST", "/head/handover", roles=HEADS)
    def head_handover_confirm(self, request, session):
        """Step 4: hand the clients over (all or none, in one transaction of the clients
        service) and show who got how many."""
        form = request.form
        receivers = form.getlist("to")
        filters = {k: form.get(k) for k in ("status", "segment", "region") if form.get(k)}
        try:
            result = self.services("clients").transfer_clients(
                form.get("from", ""), receivers, filters or None,
                include_open_deals=form.get("include_open_deals") == "1",
                include_open_tasks=form.get("include_open_tasks") == "1")
        except DomainError as exc:
            people = self._head_people(session)
            giver = next((p for p in people if p["id"] == form.get("from")), None)
            context = {"people": people, "giver": giver, "form": form,
                       "receivers": [p for p in people if p["id"] in receivers],
                       "errors": field_errors(exc), "error": exc.detail or exc.title}
            if giver is not None:
                context.update(self._handover_counts(giver["id"], form))
            return ui_render(request, "app/head/handover.html", session, active="handover",
                             status=exc.status, **context)
        names = {p["id"]: p["full_name"] for p in self._head_people(session)}
        return ui_render(request, "app/head/handover_done.html", session, active="handover",
                         result=result, names=names, giver=names.get(form.get("from"), ""))

    # -- pool and reservations --------------------------------------------------------------------
    @page("GET", "/head/pool", roles=MANAGERS)
    def head_pool(self, request, session):
        """The department's pool (clients without an owner), paged; a sales head assigns a
        client to a manager, a manager (or the head) takes one into work. The ``reserved`` tab:
        potential clients held by managers (a reservation: untouched for the clients service's
        reservation period they return to the pool)."""
        tab = "reserved" if request.args.get("tab") == "reserved" else "pool"
        offset = max(0, int(request.args.get("offset", "0") or 0)
                     if (request.args.get("offset") or "0").isdigit() else 0)
        filters = {"q": request.args.get("q", "").strip()} if request.args.get("q") else {}
        if tab == "pool":
            filters["pool"] = True
        else:
            filters["status"] = "potential"
        department = session.identity.department_id
        if department and session.identity.role in ("sales_head", "manager"):
            filters["department_id"] = department
        listing = self.services("clients").list_clients(filters, limit=POOL_PAGE, offset=offset)
        managers = self._head_people(session, roles=("manager",)) \
            if session.identity.role in ("sales_head", "director") else []
        return ui_render(
            request, "app/head/pool.html", session, active="pool", tab=tab, listing=listing,
            offset=offset, page_size=POOL_PAGE, q=request.args.get("q", ""), managers=managers,
            moscow=moscow,
            notice=request.args.get("notice"), error=request.args.get("error"),
            can_claim=session.identity.role in ("manager", "sales_head"),
            can_assign=session.identity.role in ("sales_head", "director"))

    @page("POST", "/head/pool/<uuid:client_id>/claim", roles=("manager", "sales_head"))
    def head_pool_claim(self, request, session, client_id):
        _ = translator(language_of(request))
        try:
            card = self.services("clients").claim_client(str(client_id))
        except DomainError as exc:
            return see_other("/head/pool?" + urlencode({"error": exc.detail or exc.title}))
        return see_other("/head/pool?" + urlencode(
            {"notice": _("Клиент «{name}» взят в работу", name=card.get("short_name", ""))}))

    @page("POST", "/head/pool/<uuid:client_id>/assign", roles=("sales_head", "director"))
    def head_pool_assign(self, request, session, client_id):
        _ = translator(language_of(request))
        owner = request.form.get("owner_id") or ""
        if not owner:
            return see_other("/head/pool?" + urlencode({"error": _("Выберите менеджера")}))
        try:
            card = self.services("clients").reassign_client(str(client_id), owner)
        except DomainError as exc:
            return see_other("/head/pool?" + urlencode({"error": exc.detail or exc.title}))
        return see_other("/head/pool?" + urlencode({"notice": _(
            "Клиент «{name}» передан: {owner}", name=card.get("short_name", ""),
            owner=card.get("owner_name") or "")}))

    # -- salary documents -------------------------------------------------------------------------
    @page("GET", "/head/salary", roles=HEADS)
    def head_salary(self, request, session):
        """The department's salary documents of a month, to open and approve."""
        month = month_start(request.args.get("month"))
        error = request.args.get("error")
        try:
            documents = self.services("payroll").list_documents(month.isoformat())
        except DomainError as exc:
            documents, error = [], exc.detail or exc.title
        waiting = sum(1 for d in documents if d["state"] == "confirmed")
        return ui_render(request, "app/head/salary.html", session, active="salary",
                         documents=documents, month=month, states=DOCUMENT_STATES, money=money,
                         num=number, moscow=moscow,
                         waiting=waiting, error=error, notice=request.args.get("notice"),
                         previous=(month - timedelta(days=1)).replace(day=1),
                         following=(month + timedelta(days=32)).replace(day=1),
                         can_compute=session.identity.role in ("sales_head", "director"))

    @page("POST", "/head/salary/compute", roles=("sales_head", "director"))
    def head_salary_compute(self, request, session):
        _ = translator(language_of(request))
        month = month_start(request.form.get("month"))
        try:
            result = self.services("payroll").compute_documents(month.isoformat())
        except DomainError as exc:
            return see_other(f"/head/salary?month={month:%Y-%m}&" + urlencode(
                {"error": exc.detail or exc.title}))
        return see_other(f"/head/salary?month={month:%Y-%m}&" + urlencode({"notice": _(
            "Рассчитано документов: {n}, пропущено: {m}", n=len(result["computed"]),
            m=len(result["skipped"]))}))

    @page("GET", "/head/salary/<uuid:document_id>", roles=HEADS)
    def head_salary_document(self, request, session, document_id):
        document = self.services("payroll").get_document(str(document_id))
        return self._salary_document_page(request, session, document,
                                          notice=request.args.get("notice"))

    def _salary_document_page(self, request, session, document, status=200, **context):
        identity = session.identity
        own = document["user_id"] == identity.user_id
        head = identity.role == "sales_head" and document.get("department_id") == \
            identity.department_id
        state = document["state"]
        actions = {"confirm": own and state == "draft",
                   "approve": head and state == "confirmed",
                   "return": head and state in ("draft", "confirmed"),
                   "recompute": (head or own) and state == "draft"}
        context.setdefault("errors", {})
        return ui_render(request, "app/head/salary_document.html", session, active="salary",
                         status=status, document=document, states=DOCUMENT_STATES, money=money,
                         moscow=moscow, num=number, actions=actions, **context)

    @page("POST", "/head/salary/<uuid:document_id>/<action>", roles=HEADS)
    def head_salary_action(self, request, session, document_id, action):
        """Confirm (the document's own manager), approve, return with a comment (the sales
        head of the manager's department) or recompute a draft."""
        _ = translator(language_of(request))
        payroll = self.services("payroll")
        done = {"confirm": _("Документ подтверждён"), "approve": _("Документ утверждён"),
                "return": _("Документ возвращён на доработку"),
                "recompute": _("Документ пересчитан")}
        if action not in DOCUMENT_ACTIONS:
            return see_other(f"/head/salary/{document_id}")
        try:
            if action == "confirm":
                payroll.confirm_document(str(document_id))
            elif action == "approve":
                payroll.approve_document(str(document_id))
            elif action == "return":
                payroll.return_document(str(document_id), request.form.get("comment", ""))
            else:
                payroll.recompute_document(str(document_id))
        except DomainError as exc:
            document = payroll.get_document(str(document_id))
            errors = field_errors(exc)
            if "text" in errors:  # the service names the comment "text"
                errors["comment"] = errors.pop("text")
            return self._salary_document_page(request, session, document, status=exc.status,
                                              error=exc.detail or exc.title, errors=errors,
                                              comment=request.form.get("comment", ""))
        return see_other(f"/head/salary/{document_id}?" + urlencode({"notice": done[action]}))

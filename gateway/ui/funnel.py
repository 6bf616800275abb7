"""The funnel board (``/funnel``): a kanban of the funnel's open stages with drag and drop between
manual stages, and its list view (``/funnel?view=list``). A mixin of ``GatewayService``.

Stages from the customer order on follow the 1C documents (the funnel marks them ``manual:
false``): the board shows them locked, ``board.js`` refuses to drop into or drag out of them, and
the deals service refuses such a move too (its message comes back to the page as a toast).
"""

from __future__ import annotations

from crm_platform.errors import DomainError

from ..pages import page
from .manager_common import (
    BOARD_COLUMN_CARDS,
    HEADS_HERE,
    WORKERS,
    json_reply,
    page_render,
    problem_text,
    with_query,
)

LIST_SORTS = (("updated", "Изменены"), ("created", "Созданы"), ("amount", "Сумма"),
              ("expected_close", "Ожидаемое закрытие"))
LIST_PAGE = 50
CLOSED_STAGES = ("lost", "closed_won")


def board_scope(args, identity) -> tuple[str, dict, str | None]:
    """The board's "whose deals" choice -> (scope, list_deals filters, chosen manager id).
    Managers always see their own; heads choose mine / department / one manager."""
    scope = args.get("scope") or ("department" if identity.role in HEADS_HERE else "mine")
    manager = args.get("manager") or None
    if identity.role not in HEADS_HERE:
        return "mine", {"owner_id": identity.user_id}, None
    if manager:
        return "manager", {"owner_id": manager}, manager
    if scope == "mine":
        return "mine", {"owner_id": identity.user_id}, None
    if identity.role == "sales_head" and identity.department_id:
        return "department", {"department_id": identity.department_id}, None
    return "department", {}, None


def board_columns(funnel: dict, totals: list[dict]) -> list[dict]:
    """The board's columns: every open stage of the funnel in order, locked when 1C drives it,
    with its count and sum."""
    by_stage = {t["stage"]: t for t in totals}
    columns = []
    for stage in funnel["stages"]:
        if stage["code"] in CLOSED_STAGES:
            continue
        total = by_stage.get(stage["code"], {})
        columns.append({"code": stage["code"], "title": stage["title"],
                        "locked": not stage.get("manual", False),
                        "count": total.get("deals", 0), "amount": total.get("amount", "0.00"),
                        "stalled": total.get("stalled", 0), "cards": []})
    return columns


class FunnelPages:
    @page("GET", "/funnel", roles=WORKERS)
    def funnel_page(self, request, session):
        identity = session.identity
        args = request.args
        deals = self.services("deals")
        funnels = deals.list_funnels()
        funnel = next((f for f in funnels if f["id"] == args.get("funnel")), None) or \
            next((f for f in funnels if f["is_default"]), funnels[0])
        scope, filters, manager = board_scope(args, identity)
        filters = {**filters, "open": True}
        managers = []
        if identity.role in HEADS_HERE:
            managers = self.directory.list_users(
                department_id=identity.department_id if identity.role == "sales_head" else None,
                role="manager")
        common = dict(active="funnel", funnel=funnel, funnels=funnels, scope=scope,
                      manager=manager, managers=managers, is_head=identity.role in HEADS_HERE)
        if args.get("view") == "list":
            return self._funnel_list(request, session, deals, filters, common)
        columns = board_columns(funnel, deals.stage_totals(filters))
        for column in columns:
            if column["count"]:
                column["cards"] = deals.list_deals(
                    {**filters, "stage": column["code"]}, limit=BOARD_COLUMN_CARDS,
                    cursor=None)["items"]
        return page_render(request, "app/manager/funnel.html", session, columns=columns,
                           more_limit=BOARD_COLUMN_CARDS, **common)

    def _funnel_list(self, request, session, deals, filters, common):
        args = request.args
        sort = args.get("sort") if args.get("sort") in dict(LIST_SORTS) else "updated"
        stage = args.get("stage") or None
        query = {**filters, "sort": sort}
        if stage:
            query["stage"] = stage
        if args.get("q"):
            query["q"] = args["q"]
        result = deals.list_deals(query, limit=LIST_PAGE, cursor=args.get("cursor") or None)
        base = {"view": "list", "scope": common["scope"], "manager": common["manager"],
                "sort": sort, "stage": stage, "q": args.get("q"),
                "funnel": args.get("funnel")}
        next_link = with_query("/funnel", **base, cursor=result["next_cursor"]) \
            if result["next_cursor"] else None
        return page_render(request, "app/manager/funnel_list.html", session,
                           items=result["items"], sort=sort, sorts=LIST_SORTS, stage=stage,
                           q=args.get("q", ""), next_link=next_link, base=base, **common)

    @page("POST", "/funnel/deals/<uuid:deal_id>/move", roles=("manager", "sales_head"))
    def funnel_move(self, request, session, deal_id):
        """board.js's drop: ``stage`` and the card's ``version``. JSON back: the deal's new
        stage and version, or the service's refusal as ``{"message"}`` with its status."""
        form = request.form
        stage = form.get("stage", "")
        try:
            version = int(form["version"]) if form.get("version") else None
        except ValueError:
            return json_reply({"message": "Неверная версия карточки"}, 422)
        try:
            deal = self.services("deals").move_stage(str(deal_id), stage,
                                                     expected_version=version)
        except DomainError as exc:
            return json_reply({"message": problem_text(exc) if exc.status == 422
                               else exc.detail or exc.title, "code": exc.code}, exc.status)
        return json_reply({"id": deal["id"], "stage": deal["stage"],
                           "stage_title": deal["stage_title"], "version": deal["version"]})

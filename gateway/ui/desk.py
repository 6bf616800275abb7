"""The manager's desk (``/desk``): today's and overdue tasks, stuck deals, clients nobody touched
for a month, the live KPI widget and the incoming-call screen pop. A mixin of ``GatewayService``.

The live parts are the gateway's own Server-Sent Event streams (``/api/v1/screen-pop``,
``/api/v1/kpi/stream``), which also take the page's cookie session; the page opens them with
``EventSource`` (gateway/static/manager.js).
"""

from __future__ import annotations

import logging

from crm_platform.clock import utcnow
from crm_platform.errors import DomainError

from ..pages import page, safe_next, see_other
from .manager_common import (
    WORKERS,
    day_bounds,
    is_htmx,
    moment,
    page_render,
    problem_text,
    today_msk,
    with_query,
)

log = logging.getLogger(__name__)

IDLE_DAYS = 30
DESK_ROWS = 15


def split_tasks(items: list[dict], now) -> tuple[list[dict], list[dict]]:
    """Open tasks due before the end of today -> (overdue, due today), each soonest first."""
    overdue, today = [], []
    for task in items:
        due = moment(task.get("due_at"))
        if due is None:
            continue
        (overdue if due < now else today).append(task)
    return overdue, today


class DeskPages:
    @page("GET", "/desk", roles=WORKERS)
    def desk_page(self, request, session):
        identity = session.identity
        deals = self.services("deals")
        now = utcnow()
        _, end_of_today = day_bounds(today_msk(now))
        tasks = deals.list_tasks({"assignee_id": identity.user_id, "status": "open",
                                  "due_to": end_of_today.isoformat()}, limit=200)
        overdue, today = split_tasks(tasks["items"], now)
        queue = []
        if identity.role in ("manager", "sales_head"):
            queue = deals.list_tasks({"queue": True, "status": "open"}, limit=DESK_ROWS)["items"]
        stuck = deals.list_deals({"stalled": True, "open": True}, limit=DESK_ROWS,
                                 cursor=None)["items"]
        idle, idle_total = self._idle_clients(identity)
        kpi = None
        if identity.role == "manager":
            try:
                kpi = self.services("payroll").kpi_widget()
            except DomainError as exc:  # no scheme or plan yet: the widget says so
                log.info("desk: no KPI widget for %s: %s", identity.user_id, exc)
        return page_render(request, "app/manager/desk.html", session, active="desk",
                           overdue=overdue, today=today, more_tasks=bool(tasks["next_cursor"]),
                           queue=queue, stuck=stuck, idle=idle, idle_total=idle_total,
                           idle_days=IDLE_DAYS, kpi=kpi, notice=request.args.get("notice"),
                           error=request.args.get("error"))

    def _idle_clients(self, identity) -> tuple[list[dict] | None, int]:
        """The reports service's ``idle_clients`` (a read model of every interaction): the
        caller's own clients for a manager, the department's for a head. None: reports is
        unavailable (the rest of the desk still shows)."""
        try:
            report = self.services("reports").get_report(
                "idle_clients", {"days": IDLE_DAYS, "limit": DESK_ROWS})
        except DomainError as exc:
            log.info("desk: no idle clients for %s: %s", identity.user_id, exc)
            return None, 0
        return report.get("rows") or [], (report.get("totals") or {}).get("clients", 0)

    @page("POST", "/tasks/<uuid:task_id>/done", roles=("manager", "sales_head"))
    def task_done(self, request, session, task_id):
        """Close a task from the desk or a card. htmx swaps the row for the result; a plain
        form goes back to the page it came from."""
        back = safe_next(request.form.get("next"), "/desk")
        try:
            task = self.services("deals").complete_task(
                str(task_id), "done", request.form.get("result") or None)
        except DomainError as exc:
            if is_htmx(request):
                return page_render(request, "app/manager/_task_result.html", session,
                                   error=problem_text(exc), task=None)
            return see_other(with_query(back, error=problem_text(exc)))
        if is_htmx(request):
            return page_render(request, "app/manager/_task_result.html", session, task=task,
                               error=None)
        return see_other(back)

    @page("POST", "/tasks/<uuid:task_id>/take", roles=("manager", "sales_head"))
    def task_take(self, request, session, task_id):
        """Take a task from the department's queue (someone faster: a message, not an error)."""
        try:
            self.services("deals").take_task(str(task_id))
        except DomainError as exc:
            return see_other(with_query("/desk", error=problem_text(exc)))
        return see_other(with_query("/desk", notice="Задача теперь ваша"))

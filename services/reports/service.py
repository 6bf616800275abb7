"""nameko entrypoints of the reports service: read models fed by events, reports over them.

Events arrive through batch handlers (one transaction per batch; claimed by id in the inbox, then
applied by ``projection`` idempotently by content too); reports are RPCs that check the caller,
resolve the parameters (``domain.catalogue``), narrow them to what the caller may see and run
``queries``. The organisation (manager -> department -> region) comes from the directory's events.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from nameko.timer import timer

from crm_platform.batching import batch_event_handler
from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.consumer import event_handler
from crm_platform.db import make_engine
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crm_platform.inbox import claim_event, claim_events
from crm_platform.organisation import OrganisationReplica
from crm_platform.rpc import rpc
from crm_platform.service import PersistentService

from . import metrics
from .domain import export
from .domain.catalogue import REPORTS, ROLES, AccessDenied, ParamsError, parse_params, scope
from .domain.periods import local_day
from .models import departments, rebuild_runs, staff
from .projection import (
    DEAL_EVENTS,
    ERP_EVENTS,
    apply_calls,
    apply_clients,
    apply_deals,
    apply_directory,
    apply_emails,
    apply_erp,
    apply_plans,
)
from .queries import ReportQueries, columns_for
from .rebuild import Rebuilder, identity_context, rpc_fetch, wait_for_rebuild

# When this process last refreshed the business gauges (the timer ticks every 5 s).
_last_refresh: dict[str, float] = {}


class Background(DependencyProvider):
    """``self.background.spawn(fn)``: a container-managed green thread (killed with the
    container), for work that outlives the RPC that started it (a rebuild)."""

    def spawn(self, fn) -> None:
        self.container.spawn_managed_thread(fn, identifier="reports_background")

    def get_dependency(self, worker_ctx):
        return self


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def jsonable(value):
    """Report figures as plain JSON values: money as decimal strings, dates ISO, ids as text
    (through the C encoder and decoder: a report may have thousands of rows)."""
    return json.loads(json.dumps(value, default=_plain, ensure_ascii=False))


class ReportsService(OrganisationReplica, PersistentService):
    name = "reports"

    config = Config()
    background = Background()
    staff_table = staff
    departments_table = departments

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(str(self.config.get("BUSINESS_TIMEZONE") or "Europe/Moscow"))

    # -- events -------------------------------------------------------------------------------
    def _apply(self, apply, events) -> None:
        with self.db.session() as session:
            wait_for_rebuild(session)
            fresh = claim_events(session, events)
            if fresh:
                apply(session, fresh, self.tz)

    @batch_event_handler("telephony", ["call_registered"])
    def handle_calls(self, events):
        self._apply(apply_calls, events)

    @batch_event_handler("mail", ["email_registered"])
    def handle_emails(self, events):
        self._apply(apply_emails, events)

    @batch_event_handler("clients", ["client_created", "client_updated", "client_owner_changed",
                                     "clients_merged", "campaign_changed"])
    def handle_clients(self, events):
        self._apply(apply_clients, events)

    @batch_event_handler("deals", DEAL_EVENTS)
    def handle_deals(self, events):
        self._apply(apply_deals, events)

    @batch_event_handler("erp_bridge", ERP_EVENTS)
    def handle_erp(self, events):
        self._apply(apply_erp, events)

    @batch_event_handler("payroll", ["sales_plan_changed"])
    def handle_plans(self, events):
        self._apply(apply_plans, events)

    # The organisation replica's handlers, waiting for a running rebuild like the others (a
    # rebuild replays the directory's history too).
    @event_handler("directory", "user_changed")
    def handle_user_changed(self, event):
        self._apply_one(event)

    @event_handler("directory", "department_changed")
    def handle_department_changed(self, event):
        self._apply_one(event)

    def _apply_one(self, event) -> None:
        with self.db.session() as session:
            wait_for_rebuild(session)
            if claim_event(session, event):
                apply_directory(session, [event], self.tz)

    # -- reports ------------------------------------------------------------------------------
    @rpc
    def list_reports(self) -> list[dict]:
        """The catalogue: every report's name, title, description, what it can be grouped by
        and its columns."""
        self.caller.require(*ROLES)
        return [report.summary() for report in REPORTS.values()]

    def _run(self, name: str, params: dict | None):
        identity = self.caller.require()
        now = utcnow()
        try:
            resolved = parse_params(name, params, local_day(now, self.tz))
            resolved = scope(resolved, identity.role, identity.user_id, identity.department_id)
        except ParamsError as exc:
            if exc.field == "name":
                raise NotFound(f"Нет отчёта {name!r}", code="report_not_found") from None
            raise ValidationFailed("Параметры отчёта не прошли проверку",
                                   fields={exc.field: [exc.reason]}) from None
        except AccessDenied as exc:
            raise Forbidden(str(exc), code=exc.code) from None
        with self.db.session() as session:
            result = ReportQueries(session, now).run(resolved)
        return resolved, result

    @rpc
    def get_report(self, name: str, params: dict | None = None) -> dict:
        """One report: ``{"report", "title", "params", "columns", "rows", "totals",
        "generated_at"}``. ``params``: period (day/week/month/quarter/year/custom), date or
        date_from/date_to, manager_id, department_id, region, segment, client_id, group_by (time
        bucket and slices), days (idle clients), status (time in stage), limit. A manager sees
        own figures, a sales head the department, a director all (403 otherwise); bad
        parameters are 422 naming the field; an unknown report 404."""
        resolved, result = self._run(name, params)
        return jsonable({"report": name, "title": resolved.report.title,
                         "params": resolved.echo(),
                         "columns": columns_for(resolved, result["rows"]),
                         "rows": result["rows"], "totals": result["totals"],
                         "generated_at": utcnow()})

    @rpc
    def export_report(self, name: str, params: dict | None = None, format: str = "csv") -> dict:
        """The same report as a file: ``{"filename", "content_type", "content_base64",
        "rows"}``; ``format`` csv (UTF-8 with BOM, ``;``) or xlsx, the rows then "Итого"."""
        if format not in export.FORMATS:
            raise ValidationFailed("Формат: csv или xlsx", fields={"format": ["csv или xlsx"]})
        resolved, result = self._run(name, params)
        rows = result["rows"]
        totals = {k: v for k, v in result["totals"].items() if not isinstance(v, list | dict)}
        content = export.render(format, columns_for(resolved, rows), rows, totals,
                                resolved.report.title)
        filename = f"{name}_{resolved.first.isoformat()}_{resolved.last.isoformat()}.{format}"
        return {"filename": filename, "content_type": export.FORMATS[format],
                "content_base64": base64.b64encode(content).decode("ascii"),
                "rows": len(rows)}

    # -- business metrics ---------------------------------------------------------------------
    @timer(interval=5)
    def refresh_business_metrics(self):
        """Set the business gauges from the read models every ``REPORTS_METRICS_SECONDS``
        (15; 0 turns it off)."""
        every = as_int(self.config.get("REPORTS_METRICS_SECONDS"), 15)
        if every <= 0 or time.monotonic() - _last_refresh.get("at", -1e9) < every:
            return
        _last_refresh["at"] = time.monotonic()
        self._refresh_metrics()

    def _refresh_metrics(self) -> dict:
        with self.db.session() as session:
            figures = metrics.business_figures(session, local_day(utcnow(), self.tz))
        metrics.publish(figures)
        return figures

    @rpc
    def business_metrics(self) -> dict:
        """The business gauges' figures now (directors and admins), refreshed on the spot."""
        self.caller.require("director", "admin")
        return self._refresh_metrics()

    # -- rebuild ------------------------------------------------------------------------------
    @rpc
    def rebuild(self, sources: list[str] | None = None) -> dict:
        """Empty the read models and replay the producers' history (admin): runs in the
        background; returns the run's id (``rebuild_status`` follows it). Live events wait
        while it runs and resume after. 409 while another rebuild runs."""
        self.caller.require("admin")
        with self.db.session() as session:
            running = session.execute(rebuild_runs.select().where(
                rebuild_runs.c.status == "running")).first()
            if running is not None:
                raise Conflict("Пересборка уже идёт", code="rebuild_running",
                               extra={"run_id": running.id})
        engine = make_engine(self.config["DB_URL"], pool_size=2)
        rebuilder = Rebuilder(engine, None, self.tz,
                              as_int(self.config.get("REPORTS_REBUILD_PAGE_SIZE"), 2000))
        run_id = rebuilder.start_run()
        self.background.spawn(lambda: self._rebuild_in_background(rebuilder, sources, run_id))
        return {"run_id": run_id, "status": "running"}

    def _rebuild_in_background(self, rebuilder, sources, run_id) -> None:
        from nameko.standalone.rpc import ClusterRpcProxy

        try:
            with ClusterRpcProxy({"AMQP_URI": self.config["AMQP_URI"]},
                                 context_data=identity_context(), timeout=120) as proxy:
                rebuilder.fetch = rpc_fetch(proxy)
                rebuilder.run(sources, run_id=run_id)
        except Exception:  # noqa: BLE001 - recorded on the run by Rebuilder
            pass
        finally:
            rebuilder.engine.dispose()

    @rpc
    def rebuild_status(self, run_id: int | None = None) -> dict | None:
        """A rebuild run (the latest when no id): status, events replayed per producer, times."""
        self.caller.require("admin")
        with self.db.session() as session:
            query = rebuild_runs.select().order_by(rebuild_runs.c.id.desc()).limit(1)
            if run_id is not None:
                query = rebuild_runs.select().where(rebuild_runs.c.id == int(run_id))
            row = session.execute(query).mappings().first()
        return jsonable(dict(row)) if row is not None else None

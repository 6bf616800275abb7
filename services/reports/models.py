"""Tables of the reports service (its own database; no other service reads them).

Two layers, both built from events only:

* *facts* keyed by their natural ids (a call by ``call_id``, an ERP document by its GUID in its
  newest revision, a deal, a client, a task): applying an event twice changes nothing, and a
  query over a single client (or the naive baseline of the benchmark) reads them;
* *daily rollups* keyed by ``(day, user_id, department_id, region, segment, ...)``, maintained in
  the same transaction as the facts (``INSERT .. ON CONFLICT DO UPDATE SET n = n + excluded.n``),
  so a report over five years is a range scan over at most a few hundred thousand small rows.

Dimension columns are never NULL, so they can be primary-key parts and compared with ``=``:
"nobody" / "no department" is ``NONE_ID`` and "no region" / "no segment" the empty string. The
day is the local date in ``BUSINESS_TIMEZONE`` of when the thing happened; the manager, department,
region (the client's, else the department's first) and segment (the client's) are those at that
time.
"""

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from crm_platform.organisation import departments_table, staff_table

metadata = sa.MetaData()

NONE_ID = uuid.UUID(int=0)
MONEY = sa.Numeric(18, 2)

staff = staff_table(metadata)
departments = departments_table(metadata)


def _dims(*, key: bool) -> list[sa.Column]:
    """user_id, department_id, region, segment: the slices every figure has."""
    return [
        sa.Column("user_id", UUID(as_uuid=True), nullable=False, primary_key=key),
        sa.Column("department_id", UUID(as_uuid=True), nullable=False, primary_key=key),
        sa.Column("region", sa.String(16), nullable=False, primary_key=key),
        sa.Column("segment", sa.String(50), nullable=False, primary_key=key),
    ]


def _counter(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


class Rollup:
    """One family of pre-aggregated figures in three grains, kept together:

    * ``daily``   (day, user, department, region, segment, *extra): every slice, by day;
    * ``by_user`` (day, user, department, *extra): by day when region and segment do not matter
      (about ten times fewer rows);
    * ``monthly`` (first day of the month, user, department, region, segment, *extra) and
      ``monthly_by_user`` (first day of the month, user, department, *extra): for periods of
      whole months bucketed by month, quarter or year.

    A report reads the smallest grain that has what it filters and groups by."""

    def __init__(self, name: str, measures: dict, extra: tuple = ()):
        self.name = name
        self.measures = tuple(measures)
        self.extra = tuple(column for column, _type in extra)

        def columns(dims):
            return [sa.Column("day", sa.Date, primary_key=True), *dims,
                    *[sa.Column(c, t, primary_key=True) for c, t in extra],
                    *[sa.Column(m, t, nullable=False, server_default="0")
                      for m, t in measures.items()]]

        def lean():
            return [sa.Column("user_id", UUID(as_uuid=True), nullable=False, primary_key=True),
                    sa.Column("department_id", UUID(as_uuid=True), nullable=False,
                              primary_key=True)]

        self.daily = sa.Table(f"daily_{name}", metadata, *columns(_dims(key=True)))
        self.by_user = sa.Table(f"daily_{name}_by_user", metadata, *columns(lean()))
        self.monthly = sa.Table(f"monthly_{name}", metadata, *columns(_dims(key=True)))
        self.monthly_by_user = sa.Table(f"monthly_{name}_by_user", metadata, *columns(lean()))
        self.tables = (self.daily, self.by_user, self.monthly, self.monthly_by_user)


_COUNT = sa.BigInteger


# -- clients --------------------------------------------------------------------------------------

client_facts = sa.Table(
    "client_facts", metadata,
    sa.Column("client_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("short_name", sa.String(300), nullable=False, server_default=""),
    sa.Column("owner_id", UUID(as_uuid=True), nullable=False),
    sa.Column("department_id", UUID(as_uuid=True), nullable=False),
    sa.Column("region", sa.String(16), nullable=False, server_default=""),
    sa.Column("segment", sa.String(50), nullable=False, server_default=""),
    sa.Column("status", sa.String(20)),
    # False while only interactions are known (the card's event has not arrived yet).
    sa.Column("known", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("snapshot_at", sa.DateTime(timezone=True)),   # occurred_at of the card applied
    sa.Column("last_interaction_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_client_facts_owner_idle", client_facts.c.owner_id,
         client_facts.c.last_interaction_at)
sa.Index("ix_client_facts_department", client_facts.c.department_id)

# One row per change of a client's figures (created, entered or left "potential").
client_changes = sa.Table(
    "client_changes", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("client_id", UUID(as_uuid=True), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    *_dims(key=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("potential_delta", sa.Integer, nullable=False),
)
sa.Index("ix_client_changes_client", client_changes.c.client_id, client_changes.c.day)
sa.Index("ix_client_changes_day", client_changes.c.day)

clients_rollup = Rollup("clients", {"created": _COUNT, "potential_delta": _COUNT})

# -- calls ----------------------------------------------------------------------------------------

call_facts = sa.Table(
    "call_facts", metadata,
    sa.Column("call_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    *_dims(key=False),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("deal_id", UUID(as_uuid=True)),
    sa.Column("inbound", sa.SmallInteger, nullable=False),
    sa.Column("answered", sa.SmallInteger, nullable=False),
    sa.Column("targeted", sa.SmallInteger, nullable=False),
    sa.Column("talk_seconds", sa.Integer, nullable=False),
)
sa.Index("ix_call_facts_day", call_facts.c.day)
sa.Index("ix_call_facts_client", call_facts.c.client_id, call_facts.c.day)

calls_rollup = Rollup("calls", {"calls": _COUNT, "inbound": _COUNT, "answered": _COUNT,
                                "targeted": _COUNT, "talk_seconds": _COUNT})

# -- e-mails --------------------------------------------------------------------------------------

email_facts = sa.Table(
    "email_facts", metadata,
    sa.Column("message_id", sa.String(998), primary_key=True),
    sa.Column("mailbox_user", UUID(as_uuid=True), primary_key=True),  # one copy per mailbox
    sa.Column("day", sa.Date, nullable=False),
    *_dims(key=False),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("inbound", sa.SmallInteger, nullable=False),
)
sa.Index("ix_email_facts_day", email_facts.c.day)
sa.Index("ix_email_facts_client", email_facts.c.client_id, email_facts.c.day)

emails_rollup = Rollup("emails", {"emails": _COUNT, "inbound": _COUNT})

# -- tasks ----------------------------------------------------------------------------------------

task_facts = sa.Table(
    "task_facts", metadata,
    sa.Column("task_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), nullable=False),
    sa.Column("department_id", UUID(as_uuid=True), nullable=False),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("kind", sa.String(30)),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("open", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("overdue", sa.Boolean, nullable=False, server_default=sa.false()),
)
sa.Index("ix_task_facts_open_overdue", task_facts.c.department_id,
         postgresql_where=sa.and_(task_facts.c.open, task_facts.c.overdue))

# One row per task and what happened to it ("done" or "overdue"), each at most once.
task_marks = sa.Table(
    "task_marks", metadata,
    sa.Column("task_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("mark", sa.String(10), primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    *_dims(key=False),
    sa.Column("client_id", UUID(as_uuid=True)),
)
sa.Index("ix_task_marks_day", task_marks.c.day)
sa.Index("ix_task_marks_client", task_marks.c.client_id, task_marks.c.day)

tasks_rollup = Rollup("tasks", {"tasks_done": _COUNT, "tasks_overdue": _COUNT})

# -- deals and the funnel -------------------------------------------------------------------------

deal_facts = sa.Table(
    "deal_facts", metadata,
    sa.Column("deal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("day", sa.Date, nullable=False),              # the day it was created
    *_dims(key=False),                                      # its owner etc. when created
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("title", sa.String(300), nullable=False, server_default=""),
    sa.Column("source", sa.String(30), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The current state (follows deal_updated / deal_stage_changed).
    sa.Column("owner_id", UUID(as_uuid=True), nullable=False),
    sa.Column("owner_department_id", UUID(as_uuid=True), nullable=False),
    sa.Column("stage", sa.String(40), nullable=False),
    sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("max_rank", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("lost", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("open", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("amount", MONEY),
    sa.Column("expected_close_date", sa.Date),
    sa.Column("probability", sa.SmallInteger),
    sa.Column("stalled_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_deal_facts_day", deal_facts.c.day)
sa.Index("ix_deal_facts_client", deal_facts.c.client_id)
sa.Index("ix_deal_facts_open_close", deal_facts.c.expected_close_date,
         postgresql_where=deal_facts.c.open)
sa.Index("ix_deal_facts_stalled", deal_facts.c.owner_department_id,
         postgresql_where=sa.and_(deal_facts.c.open, deal_facts.c.stalled_at.is_not(None)))

# Every stage move once (deal, moment, stage): the content key of deal_stage_changed.
stage_moves = sa.Table(
    "stage_moves", metadata,
    sa.Column("deal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("to_stage", sa.String(40), primary_key=True),
)

# Time in stage: one row per stay; ``left_at`` null while the deal is still there.
stage_stays = sa.Table(
    "stage_stays", metadata,
    sa.Column("deal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("entered_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("stage", sa.String(40), nullable=False),
    sa.Column("left_at", sa.DateTime(timezone=True)),
    sa.Column("seconds", sa.Float),                   # left_at - entered_at once it is left
    sa.Column("day", sa.Date, nullable=False),        # the day it was entered
    *_dims(key=False),
    sa.Column("client_id", UUID(as_uuid=True)),
)
sa.Index("ix_stage_stays_day", stage_stays.c.day, stage_stays.c.stage)
sa.Index("ix_stage_stays_open", stage_stays.c.deal_id,
         postgresql_where=stage_stays.c.left_at.is_(None))
sa.Index("ix_stage_stays_user", stage_stays.c.user_id, stage_stays.c.day)
sa.Index("ix_stage_stays_department", stage_stays.c.department_id, stage_stays.c.day)
sa.Index("ix_stage_stays_client", stage_stays.c.client_id)

# Closed stays as a histogram per (month entered, department, stage): log-scale buckets of the
# time spent (``domain.funnel.stay_bucket``), the count and the longest. Percentiles over
# hundreds of thousands of stays read a few thousand rows (within the buckets' 2.5 %).
stay_histogram = sa.Table(
    "stay_histogram", metadata,
    sa.Column("day", sa.Date, primary_key=True),              # first day of the month
    sa.Column("department_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("stage", sa.String(40), primary_key=True),
    sa.Column("bucket", sa.SmallInteger, primary_key=True),
    sa.Column("stays", sa.BigInteger, nullable=False),
    sa.Column("max_seconds", sa.Float, nullable=False),
)

leads_rollup = Rollup("leads", {"leads": _COUNT}, extra=(("source", sa.String(30)),))

# Deals created on ``day`` that reached ``stage`` or one beyond it (and "lost").
funnel_rollup = Rollup("funnel", {"deals": _COUNT}, extra=(("stage", sa.String(40)),))

# -- ERP documents --------------------------------------------------------------------------------

erp_documents = sa.Table(
    "erp_documents", metadata,
    sa.Column("document_guid", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),       # order, invoice, shipment, payment
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),        # posted (not un-posted or deleted)
    sa.Column("number", sa.String(100), nullable=False, server_default=""),
    sa.Column("day", sa.Date, nullable=False),
    *_dims(key=False),
    sa.Column("client_id", UUID(as_uuid=True)),
    sa.Column("amount", MONEY, nullable=False),
)
sa.Index("ix_erp_documents_day", erp_documents.c.day, erp_documents.c.kind)
sa.Index("ix_erp_documents_client", erp_documents.c.client_id, erp_documents.c.day)

erp_rollup = Rollup("erp", {"documents": _COUNT, "amount": MONEY},
                    extra=(("kind", sa.String(10)),))

# -- plans ----------------------------------------------------------------------------------------

sales_plans = sa.Table(
    "sales_plans", metadata,
    sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("department_id", UUID(as_uuid=True), nullable=False),
    sa.Column("sales_amount", MONEY, nullable=False),
    sa.Column("snapshot_at", sa.DateTime(timezone=True)),
)

# -- rebuilds -------------------------------------------------------------------------------------

rebuild_runs = sa.Table(
    "rebuild_runs", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(20), nullable=False),     # running, done, failed
    sa.Column("events", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("per_source", sa.JSON, nullable=False, server_default="{}"),
    sa.Column("error", sa.Text),
)

# The ROI report (issue 13; ``roi``): each deal's lead source, and the campaigns' budgets.
lead_sources = sa.Table(
    "lead_sources", metadata,
    sa.Column("deal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("source_kind", sa.String(30), nullable=False, server_default=""),
    sa.Column("form_key", sa.String(100)),
    sa.Column("utm_source", sa.String(200)),
    sa.Column("utm_medium", sa.String(200)),
    sa.Column("utm_campaign", sa.String(200)),
    sa.Column("our_number", sa.String(20)),
    sa.Column("campaign_id", UUID(as_uuid=True)),
)

campaign_costs = sa.Table(
    "campaign_costs", metadata,
    sa.Column("campaign_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("budget", sa.Numeric(18, 2)),
    sa.Column("utm_campaign", sa.String(200)),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_campaign_costs_utm", campaign_costs.c.utm_campaign)

# Everything a rebuild empties (the organisation too: it is replayed from the directory).
ROLLUPS = (clients_rollup, calls_rollup, emails_rollup, tasks_rollup, leads_rollup, funnel_rollup,
           erp_rollup)
READ_MODEL_TABLES = (
    staff, departments, client_facts, client_changes, call_facts, email_facts, task_facts,
    task_marks, deal_facts, stage_moves, stage_stays, stay_histogram, erp_documents,
    sales_plans, lead_sources, campaign_costs,
    *[table for rollup in ROLLUPS for table in rollup.tables],
)

"""KPI facts from events: which events count, for whom, in which month, and how ERP documents
keep their newest revision.

Rules (stated here once; the service applies them):

* **Realisations** (``erp_shipment_*``: in 1C:UT the shipment document *is* the realisation) give
  two facts: ``sales`` = the document sum (₽) and ``shipments`` = the shipped weight in tonnes
  (the lines' ``weight_kg`` / 1000; lines without a weight add nothing).
  **Payments** (``erp_payment_*``) give ``payments`` = the payment sum (₽).
  Each document keeps only its newest ``revision``: an older or repeated one changes nothing.
  ``*_posted`` / ``*_changed`` make the facts count (with the new sum, date and client);
  ``*_unposted`` / ``*_deleted`` make them stop counting; a later posting restores them.
* **Attribution**: ERP documents name the client, not the manager. The fact goes to the manager
  who owned the client *at the document date*, from a local history of ownership built from
  ``client_created``, ``client_owner_changed`` and ``clients_merged``. Deals follow their client on
  a hand-over, so this is the deal owner at that moment; a later hand-over adds a new period and
  does not move facts dated before it. A document of a client not known yet counts for nobody
  until the client's ownership arrives (then its facts are attributed).
* **New clients** (``client_created``): one for the owner at creation, unless the client came
  from the ERP or a bulk import (``source`` ``erp``/``import``: not the manager's own catch).
* **Calls** (``call_registered``): one per call that was answered, is tied to a client and a
  manager, and lasted at least ``CALL_MIN_TALK_SECONDS`` of talk (default 0: any answered call),
  inbound or outbound, in the month of its start.
* **Meetings** (``task_completed``): one per task of kind ``meeting`` completed as ``done``, for
  its assignee (else who completed it), in the month of completion; cancelled meetings do not
  count.
* A fact is dated in **Europe/Moscow** months (``months.month_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

EXCLUDED_CLIENT_SOURCES = {"erp", "import"}
ERP_KINDS = {"shipment", "payment"}
ACTIONS = {"posted", "changed", "unposted", "deleted"}


@dataclass(frozen=True)
class DocumentState:
    """What payroll keeps of one ERP document: its newest revision and whether it counts."""

    revision: int
    counts: bool


def apply_revision(current: DocumentState | None, action: str, revision: int
                   ) -> DocumentState | None:
    """The document's new state after an event, or ``None`` when the event is stale (an older or
    the same revision): nothing to do."""
    if action not in ACTIONS:
        raise ValueError(f"unknown ERP action {action}")
    if current is not None and revision <= current.revision:
        return None
    return DocumentState(revision, action in ("posted", "changed"))


def shipment_tonnes(lines: list[dict]) -> Decimal:
    kg = sum((Decimal(line["weight_kg"]) for line in lines if line.get("weight_kg") is not None),
             Decimal(0))
    return (kg / 1000).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def erp_facts(kind: str, payload: dict) -> dict[str, Decimal]:
    """KPI -> value of one ERP document in its current version."""
    if kind == "shipment":
        return {"sales": Decimal(payload["amount"]), "shipments": shipment_tonnes(
            payload.get("lines") or [])}
    if kind == "payment":
        return {"payments": Decimal(payload["amount"])}
    raise ValueError(f"no KPI facts from {kind}")


def call_counts(payload: dict, min_talk_seconds: int = 0) -> bool:
    return bool(payload["answered"] and payload.get("client_id") and payload.get("user_id")
                and (payload.get("talk_seconds") or 0) >= min_talk_seconds)


def meeting_counts(payload: dict) -> bool:
    return payload["kind"] == "meeting" and payload["status"] == "done" and bool(
        payload.get("assignee_id") or payload.get("completed_by"))


def new_client_counts(payload: dict) -> bool:
    return bool(payload.get("owner_id")) and (payload.get("source") or "") not in \
        EXCLUDED_CLIENT_SOURCES


@dataclass(frozen=True)
class OwnerPeriod:
    valid_from: datetime
    owner_id: str | None
    department_id: str | None


def owner_at(periods: list[OwnerPeriod], moment: datetime) -> OwnerPeriod | None:
    """The owner at ``moment``: the latest period begun at or before it; before the first known
    period, the first one (a client created in the CRM after its older ERP documents)."""
    if not periods:
        return None
    ordered = sorted(periods, key=lambda p: p.valid_from)
    chosen = ordered[0]
    for period in ordered:
        if period.valid_from <= moment:
            chosen = period
        else:
            break
    return chosen

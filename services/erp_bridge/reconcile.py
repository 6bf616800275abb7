"""Reconciliation: the documents the bridge holds for a period against 1C's own OData listing.

Whatever path the documents came by (EnterpriseData or OData), the question is the same: does the
CRM know every document 1C has, in the same state? The answer lists, per kind, what 1C has and the
CRM lacks (or holds in another state), what the CRM holds alive and 1C does not list, and what both
have with a different sum — each with its number and date, so an operator can re-send from 1C.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa

from crm_platform.errors import ValidationFailed
from crm_platform.rpc import rpc

from .domain import odata
from .domain.objects import Document, MalformedMessage
from .domain.registry import is_alive
from .models import documents
from .odata_client import ODataClient, ODataError

MAX_DAYS = 366


def _period(date_from: str, date_to: str) -> tuple[date, date]:
    try:
        first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except (TypeError, ValueError):
        raise ValidationFailed("Период не распознан", fields={
            "date_from": ["ГГГГ-ММ-ДД"], "date_to": ["ГГГГ-ММ-ДД"]}) from None
    if last < first or (last - first).days > MAX_DAYS:
        raise ValidationFailed("Период", fields={"date_to": [
            f"не раньше date_from и не больше {MAX_DAYS} дней"]})
    return first, last


def compare(ours: dict, theirs: dict) -> dict:
    """``ours``/``theirs``: guid -> {kind, number, date, amount, alive}. Pure."""
    missing_in_crm, missing_in_1c, different = [], [], []
    for guid, doc in theirs.items():
        mine = ours.get(guid)
        if mine is None:
            if doc["alive"]:
                missing_in_crm.append({**doc, "guid": str(guid)})
        elif mine["alive"] != doc["alive"]:
            different.append({**doc, "guid": str(guid), "crm_alive": mine["alive"],
                              "crm_amount": mine["amount"], "reason": "state"})
        elif doc["alive"] and Decimal(mine["amount"]) != Decimal(doc["amount"]):
            different.append({**doc, "guid": str(guid), "crm_alive": mine["alive"],
                              "crm_amount": mine["amount"], "reason": "amount"})
    for guid, mine in ours.items():
        if guid not in theirs and mine["alive"]:
            missing_in_1c.append({**mine, "guid": str(guid)})
    key = (lambda d: (d["kind"], d["date"], d["number"]))  # noqa: E731
    return {"missing_in_crm": sorted(missing_in_crm, key=key),
            "missing_in_1c": sorted(missing_in_1c, key=key),
            "different": sorted(different, key=key)}


class Reconciliation:
    @rpc
    def reconcile(self, date_from: str, date_to: str) -> dict:
        """Compare the documents dated within [date_from, date_to] (inclusive, business days)
        held by the bridge with 1C's OData listing (needs ``ODATA_URL``)."""
        self.caller.require("admin", "director", "integration")
        first, last = _period(date_from, date_to)
        if not self.config.get("ODATA_URL"):
            raise ValidationFailed("Сверка читает 1С по OData: не настроен ODATA_URL",
                                   fields={"ODATA_URL": ["адрес стандартного интерфейса OData"]},
                                   code="odata_not_configured")
        start = datetime.combine(first, time(0), odata.BUSINESS_TZ)
        end = datetime.combine(last + timedelta(days=1), time(0), odata.BUSINESS_TZ)
        with self.db.session() as session:
            ours = {r["guid"]: {"kind": r["kind"], "number": r["number"],
                                "date": r["document_date"].isoformat(),
                                "amount": f"{r['amount']:.2f}", "alive": r["alive"]}
                    for r in session.execute(sa.select(documents).where(
                        documents.c.document_date >= start,
                        documents.c.document_date < end)).mappings()}
        theirs, unreadable = {}, []
        client = ODataClient(self.config["ODATA_URL"], self.config.get("ODATA_USERNAME", ""),
                             self.config.get("ODATA_PASSWORD", ""))
        try:
            for entity_set in odata.DOCUMENT_SETS:
                for entity in client.list(entity_set, date_from=start):
                    try:
                        doc = odata.to_object(entity_set, entity)
                    except MalformedMessage as exc:
                        unreadable.append({"entity_set": entity_set,
                                           "ref_key": str(entity.get("Ref_Key")),
                                           "reason": exc.reason})
                        continue
                    if isinstance(doc, Document) and doc.date < end:
                        theirs[doc.guid] = {"kind": doc.kind, "number": doc.number,
                                            "date": doc.date.isoformat(),
                                            "amount": f"{doc.amount:.2f}",
                                            "alive": is_alive(doc)}
        except ODataError as exc:
            raise ValidationFailed(f"1С не ответила на сверку: {exc}", fields={
                "ODATA_URL": [str(exc)[:500]]}, code="odata_unavailable") from None
        finally:
            client.close()
        result = compare(ours, theirs)
        kinds = sorted({d["kind"] for d in [*ours.values(), *theirs.values()]})
        return {"date_from": first.isoformat(), "date_to": last.isoformat(),
                "counts": {kind: {"crm": sum(1 for d in ours.values() if d["kind"] == kind),
                                  "erp": sum(1 for d in theirs.values() if d["kind"] == kind)}
                           for kind in kinds},
                **result, "unreadable_in_1c": unreadable,
                "in_sync": not any(result.values())}

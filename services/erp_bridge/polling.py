"""The OData poller of the bridge: 1C's standard OData interface read on a timer.

1C has no change feed, so each round reads the documents dated in a moving window and re-reads by
key every document the bridge still tracks as open (alive, dated within ``ODATA_TRACK_DAYS``): a
404 there is a physical deletion. What was read goes through the same registry as EnterpriseData,
keyed by ``(EntitySet, Ref_Key, DataVersion)``: an unchanged ``DataVersion`` is nothing new. An
entity that cannot be read is quarantined alone; the rest of the round applies.

One replica polls at a time: the round holds the ``poll_state`` row (``SKIP LOCKED``).
Config: ``ODATA_URL`` (``http://host/base/odata/standard.odata``; empty: no polling),
``ODATA_USERNAME``, ``ODATA_PASSWORD``, ``ODATA_POLL_SECONDS`` (60), ``ODATA_WINDOW_DAYS`` (7),
``ODATA_TRACK_DAYS`` (90), ``ODATA_FIRST_DAYS`` (30: how far back the first round reads).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import timedelta

import sqlalchemy as sa
from nameko.timer import timer
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_platform.clock import utcnow
from crm_platform.config import as_int
from crm_platform.rpc import rpc

from .applying import Receipt, apply_objects
from .domain import odata
from .models import documents, poll_state, quarantine
from .odata_client import ODataClient, ODataError, Poller

log = logging.getLogger(__name__)


class ODataPolling:
    @timer(interval=10)
    def poll_odata(self):
        if self.config.get("ODATA_URL"):
            try:
                self.poll_odata_once()
            except ODataError as exc:
                log.warning("1C OData poll failed: %s", exc)

    @rpc
    def poll_odata_now(self) -> dict:
        """One polling round now (admin), whatever the interval."""
        self.caller.require("admin", "integration")
        if not self.config.get("ODATA_URL"):
            return {"outcome": "not_configured"}
        try:
            return self.poll_odata_once(force=True)
        except ODataError as exc:
            return {"outcome": "failed", "error": str(exc)[:2000], "status": exc.status}

    def poll_odata_once(self, force: bool = False) -> dict:
        now = utcnow()
        failure = None
        every = timedelta(seconds=as_int(self.config.get("ODATA_POLL_SECONDS"), 60))
        rejected = []
        with self.db.session() as session:
            session.execute(pg_insert(poll_state).values(name="odata").on_conflict_do_nothing())
            state = session.execute(sa.select(poll_state).where(poll_state.c.name == "odata")
                                    .with_for_update(skip_locked=True)).mappings().first()
            if state is None:
                return {"outcome": "busy"}               # another replica is polling
            if not force and state["polled_at"] and now - state["polled_at"] < every:
                return {"outcome": "not_due"}
            since = state["polled_at"] or now - timedelta(
                days=as_int(self.config.get("ODATA_FIRST_DAYS"), 30))
            tracked = self._tracked_open(session, now)
            client = ODataClient(self.config["ODATA_URL"], self.config.get("ODATA_USERNAME", ""),
                                 self.config.get("ODATA_PASSWORD", ""))
            try:
                result = Poller(client, window_days=as_int(
                    self.config.get("ODATA_WINDOW_DAYS"), 7)).poll(tracked, since)
            except ODataError as exc:
                failure = exc
            finally:
                client.close()
            if failure is None:
                receipt = Receipt("applied", "odata", objects=len(result.objects))
                apply_objects(session, [*result.objects, *result.deleted], now=now,
                              receipt=receipt, version="odata:deleted",
                              odata_versions={guid: v for (_, guid), v
                                              in result.seen_versions.items()})
                self.outbox.emit_many(session, receipt.events)
                session.execute(sa.update(poll_state).where(poll_state.c.name == "odata")
                                .values(polled_at=result.polled_at, last_error=None,
                                        updated_at=now))
                rejected = result.rejected
            else:
                # Nothing of the round is applied; the next round reads the same window again.
                session.execute(sa.update(poll_state).where(poll_state.c.name == "odata")
                                .values(last_error=str(failure)[:2000], updated_at=now))
        if failure is not None:
            raise failure
        for item in rejected:
            # The same unreadable state is read again every round: quarantine it once.
            name = f"{item.entity_set}({item.ref_key}) {item.data_version or ''}".strip()[:300]
            with self.db.session() as session:
                seen = session.execute(sa.select(quarantine.c.id).where(
                    quarantine.c.transport == "odata", quarantine.c.filename == name)).first()
            if seen is None:
                self._quarantine(json.dumps(item.entity, ensure_ascii=False,
                                            default=str).encode(), "odata", name, item.reason,
                                 item.field)
        return {**receipt.summary(), "deleted": len(result.deleted), "rejected": len(rejected)}

    def _tracked_open(self, session, now) -> dict:
        """Alive documents dated within ODATA_TRACK_DAYS, by entity set: re-read every round."""
        since = now - timedelta(days=as_int(self.config.get("ODATA_TRACK_DAYS"), 90))
        tracked: dict = defaultdict(set)
        for kind, guid in session.execute(sa.select(documents.c.kind, documents.c.guid).where(
                documents.c.alive, documents.c.document_date >= since)):
            tracked[odata.SET_OF_KIND[kind]].add(guid)
        return dict(tracked)

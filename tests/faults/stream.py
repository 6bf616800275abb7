"""A stream of 1C postings into the real erp_bridge and deals processes (private broker and
database), what each caller got, and what the deals service ended with.

Every client of the stream gets three EnterpriseData messages, interleaved with the other
clients': its customer order posted, the order changed (a new amount), the whole order shipped.
1C resends a message it got no receipt for (same number, same content) — so a caller that got an
error retries, and the bridge answers ``repeat`` for what it had applied already."""

from __future__ import annotations

import base64
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa

from crm_platform.identity import IDENTITY_CONTEXT_KEY
from crm_platform.testing import ReplicatedOrg, SqlReader, wait_for
from services.erp_bridge.tests import ed_samples as ed

INTEGRATION = {"user_id": str(uuid.UUID(int=1)), "role": "integration", "username": "erp",
               "full_name": "1С:УТ"}
# Errors a caller may get while a broker, database or service restarts: it resends.
RETRYABLE = ("timeout", "connection", "Unavailable")


@dataclass
class Client:
    client_id: uuid.UUID
    counterparty: uuid.UUID
    inn: str
    order: uuid.UUID
    shipment: uuid.UUID
    first_amount: Decimal
    final_amount: Decimal


@dataclass
class Stream:
    """The messages to send, in order, and what every attempt got."""

    clients: list[Client]
    messages: list[bytes]
    outcomes: list[list[str]] = field(default_factory=list)

    @classmethod
    def build(cls, count: int, seed: int = 11) -> Stream:
        rng = random.Random(seed)
        clients = []
        for n in range(count):
            first = Decimal(rng.randrange(10_000, 900_000)) + Decimal("0.50")
            clients.append(Client(uuid.uuid4(), uuid.uuid4(), f"77{n:08d}", uuid.uuid4(),
                                  uuid.uuid4(), first, first + Decimal(rng.randrange(1, 9000))))
        steps = []
        for c in clients:
            steps.append([("order", c, c.first_amount), ("order", c, c.final_amount),
                          ("shipment", c, c.final_amount)])
        objects = []
        while any(steps):    # interleave the clients, each one's own messages in order
            pending = [s for s in steps if s]
            objects.append(rng.choice(pending).pop(0))
        messages = []
        for number, (kind, c, amount) in enumerate(objects, start=1):
            date = "2026-11-20T10:00:00"
            if kind == "order":
                xml = ed.order_xml(c.order, f"ЗК-{c.inn[-4:]}", date, amount, c.counterparty,
                                   c.inn, "770101001")
            else:
                xml = ed.shipment_xml(c.shipment, f"РТ-{c.inn[-4:]}", date, amount,
                                      c.counterparty, c.inn, "770101001", c.order)
            messages.append(ed.ed_message(number, [xml]))
        return cls(clients, messages, [[] for _ in messages])

    def seed(self, erp_url: str, deals_url: str) -> ReplicatedOrg:
        """The clients as both services' replicas know them (from the clients' events)."""
        org = ReplicatedOrg(deals_url)
        now = datetime.now(UTC)
        with org.engine.begin() as conn:
            for c in self.clients:
                conn.execute(sa.text(
                    "INSERT INTO client_replica (client_id, short_name, owner_id, department_id,"
                    " region, status, erp_counterparty_guid, created_at) VALUES (:id, :name,"
                    " :owner, :dept, 'RU-SVE', 'active', :cp, :now)"),
                    {"id": c.client_id, "name": f"ООО «Кровля {c.inn}»",
                     "owner": org.id("m.ural.1"), "dept": org.departments["ural"],
                     "cp": c.counterparty, "now": now})
        erp = SqlReader(erp_url)
        for c in self.clients:
            erp.execute("INSERT INTO client_replica (client_id, short_name, inn, kpp,"
                        " erp_counterparty_guid) VALUES (:id, :name, :inn, '770101001', :cp)",
                        id=c.client_id, name=f"ООО «Кровля {c.inn}»", inn=c.inn,
                        cp=c.counterparty)
        erp.dispose()
        return org

    def send(self, amqp_uri: str, index: int, *, deadline: float, rpc_timeout: float = 8):
        """Send one message until it gets a receipt (1C's resend), recording every attempt."""
        from nameko.standalone.rpc import ClusterRpcProxy

        payload = base64.b64encode(self.messages[index]).decode()
        while True:
            try:
                with ClusterRpcProxy({"AMQP_URI": amqp_uri},
                                     context_data={IDENTITY_CONTEXT_KEY: INTEGRATION},
                                     timeout=rpc_timeout) as rpc:
                    receipt = rpc.erp_bridge.receive_enterprise_data(payload, f"m{index}.xml")
                self.outcomes[index].append(receipt["outcome"])
                return
            except Exception as exc:  # noqa: BLE001 - what the caller got is the point
                name = type(exc).__name__
                detail = getattr(exc, "exc_type", "") or ""
                self.outcomes[index].append(f"error:{name}:{detail}:{str(exc)[:200]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"message {index + 1} got no receipt: "
                                         f"{self.outcomes[index]}") from exc
                time.sleep(0.5)

    def send_all(self, amqp_uri: str, *, during=None, at: int | None = None,
                 timeout: float = 120, calls: Calls | None = None) -> None:
        """Send the messages one by one (as 1C does), and ``calls`` beside them (as the PBX
        does); ``during()`` runs in the background once message ``at`` has been sent."""
        import eventlet

        deadline = time.monotonic() + timeout
        fault = None
        pbx = None
        if calls is not None:
            def send_calls():
                for index in range(len(calls.forms)):
                    calls.send(amqp_uri, index, deadline=deadline)
                    eventlet.sleep(0.05)
            pbx = eventlet.spawn(send_calls)
        for index in range(len(self.messages)):
            if during is not None and index == at:
                fault = eventlet.spawn(during)
            self.send(amqp_uri, index, deadline=deadline)
        for greenlet in (fault, pbx):
            if greenlet is not None:
                greenlet.wait()

    # -- what the callers got ----------------------------------------------------------------
    def check_callers(self) -> dict:
        """Every message ended with a receipt; before it only retryable errors; ``repeat`` only
        after an error (the first attempt's receipt was lost, not a double send)."""
        errors = 0
        for number, attempts in enumerate(self.outcomes, start=1):
            *before, last = attempts
            assert last in ("applied", "repeat"), (number, attempts)
            for attempt in before:
                assert attempt.startswith("error:"), (number, attempts)
                assert any(word.lower() in attempt.lower() for word in RETRYABLE), (
                    f"message {number}: not a clear retryable error: {attempt}")
            if last == "repeat":
                assert before, (number, attempts)
            errors += len(before)
        return {"messages": len(self.outcomes), "errors": errors}

    # -- what the CRM ended with -------------------------------------------------------------
    def expected(self) -> dict:
        return {str(c.client_id): (c.final_amount, c.final_amount) for c in self.clients}

    def deals_state(self, deals: SqlReader) -> dict:
        rows = deals.rows("SELECT client_id, ordered_amount, shipped_amount FROM deals "
                          "WHERE client_id IS NOT NULL")
        state: dict = {}
        for r in rows:
            state.setdefault(str(r["client_id"]), []).append(
                (r["ordered_amount"], r["shipped_amount"]))
        return {k: v[0] if len(v) == 1 else v for k, v in state.items()}

    def check_reflected(self, deals: SqlReader, erp: SqlReader, timeout: float = 60) -> None:
        """Each client has exactly one deal, ordered and shipped the final amount; each 1C
        message applied exactly once; each document event handled once."""
        expected = self.expected()
        wait_for(lambda: self.deals_state(deals) == expected
                 and deals.scalar("SELECT count(*) FROM erp_documents") == 2 * len(self.clients),
                 timeout=timeout, interval=0.3,
                 message="every posting reflected in deals")
        assert erp.scalar("SELECT count(*) FROM exchange_log WHERE outcome = 'applied'") == len(
            self.messages)
        assert erp.scalar("SELECT count(*) FROM documents") == 2 * len(self.clients)
        sent = sum(c.final_amount for c in self.clients)
        assert deals.scalar("SELECT sum(ordered_amount) FROM deals WHERE client_id IS NOT NULL"
                            ) == sent
        events = erp.scalar("SELECT count(*) FROM outbox WHERE type LIKE 'erp_%'")
        # Each event handled once (the inbox), and the stage history has exactly the moves the
        # documents make (a double would add a move).
        assert events == len(self.messages)
        assert deals.scalar("SELECT count(*) FROM processed_events WHERE consumer LIKE '%erp%'"
                            ) == events
        moves = deals.rows("SELECT h.deal_id, h.to_stage FROM stage_history h JOIN deals d ON "
                           "d.id = h.deal_id WHERE d.client_id IS NOT NULL ORDER BY h.id")
        per_deal: dict = {}
        for m in moves:
            per_deal.setdefault(m["deal_id"], []).append(m["to_stage"])
        assert len(per_deal) == len(self.clients)
        for stages in per_deal.values():
            assert stages[-1] == "shipped" and len(stages) == len(set(stages)), stages


MANGO_KEY, MANGO_SALT = "fault-mango-key", "fault-mango-salt"
TELEPHONY_ENV = {"CRM_MANGO_API_KEY": MANGO_KEY, "CRM_MANGO_API_SALT": MANGO_SALT}


@dataclass
class Calls:
    """Finished outbound calls as Mango Office reports them (the ``summary`` webhook through the
    telephony RPC, as the gateway passes it on); a caller that got an error resends (Mango
    retries a webhook that did not get 200)."""

    forms: list[dict]
    outcomes: list[list[str]] = field(default_factory=list)

    @classmethod
    def build(cls, count: int) -> Calls:
        from services.telephony.tests import cloud_samples as cs

        forms = []
        for n in range(count):
            sample = cs.mango_outbound(cs.T0 + 600 * n)
            summary = dict(sample.summary, entry_id=f"{sample.entry_id}-fault-{n}")
            forms.append(cs.mango_form(summary, MANGO_KEY, MANGO_SALT))
        return cls(forms, [[] for _ in forms])

    def send(self, amqp_uri: str, index: int, *, deadline: float, rpc_timeout: float = 8):
        from nameko.standalone.rpc import ClusterRpcProxy

        while True:
            try:
                with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=rpc_timeout) as rpc:
                    answer = rpc.telephony.mango_webhook("summary", self.forms[index])
                self.outcomes[index].append("duplicate" if answer.get("duplicate") else "ok")
                return
            except Exception as exc:  # noqa: BLE001 - what the caller got is the point
                detail = getattr(exc, "exc_type", "") or ""
                self.outcomes[index].append(f"error:{type(exc).__name__}:{detail}:"
                                            f"{str(exc)[:200]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"call {index} got no answer: "
                                         f"{self.outcomes[index]}") from exc
                time.sleep(0.5)

    def check(self, telephony: SqlReader, deals: SqlReader, timeout: float = 60) -> dict:
        """Every call answered (after at most retryable errors; a duplicate only after an
        error), stored once, and its event handled once by deals."""
        errors = 0
        for number, attempts in enumerate(self.outcomes):
            *before, last = attempts
            assert last in ("ok", "duplicate"), (number, attempts)
            for attempt in before:
                assert any(word.lower() in attempt.lower() for word in RETRYABLE), (
                    f"call {number}: not a clear retryable error: {attempt}")
            if last == "duplicate":
                assert before, (number, attempts)
            errors += len(before)
        assert telephony.scalar("SELECT count(*) FROM calls") == len(self.forms)
        assert telephony.scalar("SELECT count(*) FROM outbox WHERE type = 'call_registered'"
                                ) == len(self.forms)
        wait_for(lambda: deals.scalar("SELECT count(*) FROM processed_events WHERE consumer "
                                      "LIKE '%call_registered'") == len(self.forms),
                 timeout=timeout, interval=0.3, message="deals to handle every call")
        return {"calls": len(self.forms), "errors": errors}

"""The Idempotency-Key store against a real PostgreSQL: claim, replay, reuse, in progress, take
over, release, purge — and two concurrent claims of one key, where exactly one may run."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from crm_platform.db import SessionFactory, make_engine
from crm_platform.errors import Conflict, ValidationFailed
from crm_platform.idempotency import (
    claim,
    complete,
    purge_idempotency_keys,
    release,
)
from crm_platform.tables import idempotency_keys

pytestmark = pytest.mark.integration

OP = "probe.create_thing"


@pytest.fixture
def sessions(test_databases):
    engine = make_engine(test_databases.blank("idempotency"))
    factory = SessionFactory(engine)
    with factory.session() as session:
        session.execute(sa.delete(idempotency_keys))
    yield factory
    engine.dispose()


def run_claim(sessions, key="k1", print_="p1", caller="u1", op=OP):
    with sessions.session() as session:
        return claim(session, caller, key, print_, op)


def test_first_claim_runs_then_the_result_is_replayed(sessions):
    assert run_claim(sessions) is None
    with sessions.session() as session:
        complete(session, "u1", "k1", {"id": "42", "created": True, "items": [1, 2]})

    assert run_claim(sessions) == {"response": {"id": "42", "created": True, "items": [1, 2]}}


def test_same_key_other_request_or_operation_is_reused(sessions):
    run_claim(sessions)
    with pytest.raises(ValidationFailed) as caught:
        run_claim(sessions, print_="p2")
    assert caught.value.code == "idempotency_key_reused"
    with pytest.raises(ValidationFailed):
        run_claim(sessions, op="probe.other")


def test_running_claim_is_409_until_stale_then_taken_over(sessions):
    run_claim(sessions)
    with pytest.raises(Conflict) as caught:
        run_claim(sessions)
    assert caught.value.code == "idempotency_in_progress"
    assert caught.value.extra["retry_after"] == 1

    with sessions.session() as session:
        session.execute(sa.update(idempotency_keys).values(
            created_at=sa.func.now() - sa.text("interval '6 minutes'")))
    assert run_claim(sessions) is None        # the dead attempt's claim is taken over
    with pytest.raises(Conflict):
        run_claim(sessions)                   # and is fresh again


def test_release_frees_only_a_running_claim(sessions):
    run_claim(sessions)
    with sessions.session() as session:
        release(session, "u1", "k1")
    assert run_claim(sessions, print_="p2") is None   # a new request may use the key
    with sessions.session() as session:
        complete(session, "u1", "k1", {"ok": True})
        release(session, "u1", "k1")                  # a finished result is never dropped
    assert run_claim(sessions, print_="p2") == {"response": {"ok": True}}


def test_keys_are_per_caller(sessions):
    run_claim(sessions, caller="u1")
    assert run_claim(sessions, caller="u2", print_="other") is None


def test_purge_forgets_day_old_keys(sessions):
    run_claim(sessions, key="old")
    run_claim(sessions, key="new")
    with sessions.session() as session:
        session.execute(sa.update(idempotency_keys).where(idempotency_keys.c.key == "old")
                        .values(created_at=sa.func.now() - sa.text("interval '25 hours'")))
        assert purge_idempotency_keys(session, timedelta(hours=24)) == 1
        left = session.execute(sa.select(idempotency_keys.c.key)).scalars().all()
    assert left == ["new"]


def test_concurrent_claims_of_one_key_let_exactly_one_run(sessions):
    outcomes, barrier = [], threading.Barrier(6)

    def attempt():
        barrier.wait()
        try:
            outcomes.append("run" if run_claim(sessions, key="race") is None else "replay")
        except Conflict:
            outcomes.append("409")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["409"] * 5 + ["run"]

"""The outbox as an event log: retention 0 keeps every sent event for ``export_events``."""

import pytest

from crm_platform.outbox import OutboxRelay


class NoDatabase:
    def session(self):
        raise AssertionError("keeping everything must not touch the database")


def test_retention_zero_keeps_the_history():
    relay = OutboxRelay(NoDatabase(), publisher=None, service="probe", retention_days=0)
    assert relay.purge_published() == 0


def test_a_positive_retention_purges():
    relay = OutboxRelay(NoDatabase(), publisher=None, service="probe", retention_days=7)
    with pytest.raises(AssertionError, match="must not touch"):
        relay.purge_published()

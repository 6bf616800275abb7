"""nameko entrypoints of the logistics service.

The platform frame only so far: health, readiness, metrics, the outbox relay and the dead-letter
RPCs. Its domain arrives with its own issue.
"""

from crm_platform.service import PersistentService


class LogisticsService(PersistentService):
    name = "logistics"

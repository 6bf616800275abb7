"""nameko entrypoints of the reports service.

The platform frame only so far: health, readiness, metrics, the outbox relay and the dead-letter
RPCs. Its domain arrives with its own issue.
"""

from crm_platform.service import PersistentService


class ReportsService(PersistentService):
    name = "reports"

"""nameko entrypoints of the clients service.

The platform frame only so far: health, readiness, metrics, the outbox relay and the dead-letter
RPCs. Its domain arrives with its own issue.
"""

from crm_platform.service import PersistentService


class ClientsService(PersistentService):
    name = "clients"

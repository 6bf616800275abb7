"""Entrypoints of the clients service: exports of client lists (CSV, XLSX), by role and quota.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).
"""


class ExportEntrypoints:
    pass

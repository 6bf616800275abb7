"""Entrypoints of the clients service for import of clients and contacts from Excel and CSV files.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).
"""


class ImportEntrypoints:
    pass

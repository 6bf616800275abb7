"""Entrypoints of the clients service: hand-over between managers and the merge of duplicates.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).
"""


class HandoverEntrypoints:
    pass

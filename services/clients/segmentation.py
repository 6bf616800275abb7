"""Entrypoints of the clients service for saved segments, ABC by revenue, dormant clients, reactivation campaigns and the ERP and interaction facts they rest on.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).
"""


class SegmentationEntrypoints:
    pass

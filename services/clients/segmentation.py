"""Entrypoints of the clients service: segments, ABC, dormant clients, reactivation campaigns.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_card``, ``_change_owner``,
``_matches``).
"""


class SegmentationEntrypoints:
    pass

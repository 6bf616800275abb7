"""The one source of "now" for every service.

Stalled-deal scans, overdue tasks and ownership release all depend on time, so no domain code calls
``datetime.now()`` itself: it takes ``now`` as an argument, and entrypoints take it from ``clock``.
Tests move the clock with ``clock.travel_to`` / ``clock.advance`` and put it back with ``reset``.
A process started with ``CRM_CLOCK_OFFSET_SECONDS`` runs shifted (for demo and end-to-end runs).
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self):
        self._lock = threading.Lock()
        self._frozen_at: datetime | None = None
        self._offset = timedelta(seconds=float(os.environ.get("CRM_CLOCK_OFFSET_SECONDS") or 0))

    def now(self) -> datetime:
        """Timezone-aware UTC now, as moved by tests."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def travel_to(self, moment: datetime, *, freeze: bool = True) -> None:
        """Jump to ``moment``; with ``freeze`` time stands still there until moved again."""
        if moment.tzinfo is None:
            raise ValueError("clock needs a timezone-aware datetime")
        with self._lock:
            if freeze:
                self._frozen_at = moment.astimezone(UTC)
            else:
                self._frozen_at = None
                self._offset = moment - datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
            else:
                self._offset += delta

    def reset(self) -> None:
        with self._lock:
            self._frozen_at = None
            self._offset = timedelta(0)


clock = Clock()


def utcnow() -> datetime:
    return clock.now()

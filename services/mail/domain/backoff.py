"""When a mailbox that failed to sync is tried again (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta


def retry_delay(failures: int, base_seconds: float = 60, cap_seconds: float = 3600) -> float:
    """Exponential: ``base`` after the first failure, doubled for each further one, at most
    ``cap``."""
    if failures <= 0:
        return 0.0
    return float(min(cap_seconds, base_seconds * 2 ** min(failures - 1, 30)))


def next_attempt(now: datetime, failures: int, base_seconds: float = 60,
                 cap_seconds: float = 3600) -> datetime:
    return now + timedelta(seconds=retry_delay(failures, base_seconds, cap_seconds))

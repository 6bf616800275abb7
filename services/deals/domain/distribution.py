"""Lead distribution rules, pure: which manager of a department gets a lead nobody owns yet.

A department distributes when its settings say so (``enabled``), in one of two modes:
``round_robin`` (the next available manager after the last one given a lead, in a fixed order) or
``least_loaded`` (the available manager with the fewest open leads; ties by today's count, then
the fixed order). Available: an active manager of the department, on duty (the head can take a
manager off lead distribution without an absence: ``off_duty`` in the settings), not absent today
(vacation, sick leave, ...), under the per-manager daily cap. Nobody available: the department's
queue (its head), who is told. A lead nobody takes (no stage move, task done, call, note) within
``LEAD_ESCALATION_MINUTES`` escalates to the head once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

MODES = ("round_robin", "least_loaded")
ABSENCE_KINDS = ("vacation", "sick_leave", "business_trip", "day_off", "other")


@dataclass(frozen=True)
class Candidate:
    user_id: str
    active: bool = True
    role: str = "manager"
    absences: tuple[tuple[date, date], ...] = field(default_factory=tuple)
    assigned_today: int = 0
    open_leads: int = 0
    on_duty: bool = True


def absent_on(candidate: Candidate, day: date) -> bool:
    return any(start <= day <= end for start, end in candidate.absences)


def available(candidates: list[Candidate], day: date, daily_cap: int | None) -> list[Candidate]:
    """Who may get a lead today, in the fixed order (by user id)."""
    return sorted((c for c in candidates if c.active and c.role == "manager" and c.on_duty
                   and not absent_on(c, day)
                   and (daily_cap is None or c.assigned_today < daily_cap)),
                  key=lambda c: c.user_id)


def pick(mode: str, candidates: list[Candidate], day: date, daily_cap: int | None,
         last_user_id: str | None = None) -> str | None:
    """The manager to give the lead to, or None (the department's queue)."""
    if mode not in MODES:
        raise ValueError(f"unknown distribution mode {mode!r}")
    pool = available(candidates, day, daily_cap)
    if not pool:
        return None
    if mode == "least_loaded":
        return min(pool, key=lambda c: (c.open_leads, c.assigned_today, c.user_id)).user_id
    if last_user_id is not None:
        after = [c for c in pool if c.user_id > str(last_user_id)]
        if after:
            return after[0].user_id
    return pool[0].user_id


def department_for(region: str | None, departments: list[tuple[str, list[str]]],
                   fallback: str | None) -> str | None:
    """The department serving ``region`` (the first whose regions list it), else ``fallback``
    (the form's department)."""
    if region:
        for department_id, regions in departments:
            if region in (regions or []):
                return department_id
    return fallback


def escalation_due(assigned_at: datetime, last_activity_at: datetime | None, now: datetime,
                   minutes: int) -> bool:
    """A lead given out at ``assigned_at`` with no activity since is due for escalation once
    ``minutes`` have passed."""
    if last_activity_at is not None and last_activity_at >= assigned_at:
        return False
    return now - assigned_at >= timedelta(minutes=minutes)


def check_settings(data: dict) -> tuple[dict, dict[str, list[str]]]:
    """Distribution settings of a department: ``enabled`` bool, ``mode``, ``daily_cap`` (1-1000
    or null: no cap), ``off_duty`` (user ids of managers not given leads; whether they are the
    department's managers is the caller's check). Returns (clean, errors by field)."""
    errors: dict[str, list[str]] = {}
    clean: dict = {}
    enabled = data.get("enabled", False)
    if not isinstance(enabled, bool):
        errors["enabled"] = ["true или false"]
    clean["enabled"] = bool(enabled)
    mode = data.get("mode", "round_robin")
    if mode not in MODES:
        errors["mode"] = [f"одно из: {', '.join(MODES)}"]
    clean["mode"] = mode
    cap = data.get("daily_cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                            or not 1 <= cap <= 1000):
        errors["daily_cap"] = ["целое от 1 до 1000 или null (без ограничения)"]
    clean["daily_cap"] = cap
    off_duty = data.get("off_duty") or []
    ids: list[uuid.UUID] = []
    if not isinstance(off_duty, list) or len(off_duty) > 500:
        errors["off_duty"] = ["список id менеджеров (не больше 500)"]
    else:
        for value in off_duty:
            try:
                ids.append(uuid.UUID(str(value)))
            except ValueError:
                errors["off_duty"] = [f"не id сотрудника: {str(value)[:50]}"]
                break
    clean["off_duty"] = sorted(set(ids), key=str)
    return clean, errors


SOURCE_KINDS = ("web_form", "call", "email", "manual", "campaign", "import", "erp", "other")
SOURCE_TEXT_KEYS = ("form_key", "utm_source", "utm_medium", "utm_campaign", "utm_content",
                    "utm_term", "our_number", "campaign_id", "page_url", "referrer")
DEAL_SOURCE_KIND = {"web": "web_form", "call": "call", "email": "email", "manual": "manual",
                    "campaign": "campaign", "import": "import", "erp": "erp", "other": "other"}


def clean_source_detail(value, source: str) -> dict:
    """Where a lead came from, kept on the deal and carried in ``deal_created``: ``kind``
    (derived from the deal's ``source`` unless given) and the known text keys (form key, UTM,
    the line called, campaign id, page, referrer); anything else is dropped."""
    if value in (None, ""):
        value = {}
    if not isinstance(value, dict):
        raise ValueError("source_detail: объект {kind, form_key, utm_*, our_number, campaign_id}")
    kind = value.get("kind") or DEAL_SOURCE_KIND.get(source, "other")
    if kind not in SOURCE_KINDS:
        raise ValueError(f"source_detail.kind: одно из {', '.join(SOURCE_KINDS)}")
    clean = {"kind": kind}
    for key in SOURCE_TEXT_KEYS:
        text = str(value.get(key) or "").strip()
        if text:
            clean[key] = text[:2000]
    return clean

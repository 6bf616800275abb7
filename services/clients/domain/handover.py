"""Rules of the hand-over between managers and of the merge of duplicates, free of nameko and of
the database.

Hand-over: which clients (filters by status, segment, region), to whom (one receiver or several),
and how a list of clients is spread evenly over several receivers (round-robin in a stable order,
so that the counts per receiver differ by at most one).

Merge: when two cards may not be merged (the same card, one already merged, two legal entities),
and what the survivor's card becomes: lists (phones, e-mails, addresses) are united without
duplicates, empty survivor fields are filled from the merged card, and a value the survivor
already has wins (the other one is reported, never silently lost: the merged row stays in the
database and the audit names what was not taken over).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from crm_platform.errors import Conflict, ValidationFailed

from ..models import STATUSES

# --- hand-over ----------------------------------------------------------------------------------

FILTER_FIELDS = ("status", "segment", "region")


def transfer_filters(filters: dict | None) -> dict[str, list[str]]:
    """``{"status": "active", "region": ["RU-SVE", "RU-CHE"]}`` -> every value as a list of
    strings. Empty values (None, "", []) do not filter. Unknown keys and statuses are refused."""
    out: dict[str, list[str]] = {}
    if filters is None:
        return out
    if not isinstance(filters, dict):
        raise ValidationFailed("Неверный фильтр передачи",
                               fields={"filters": ["ожидается объект {status, segment, region}"]})
    errors: dict[str, list[str]] = {}
    for key, value in filters.items():
        if key not in FILTER_FIELDS:
            errors.setdefault(f"filters.{key}", []).append(
                "неизвестный фильтр: можно status, segment, region")
            continue
        values = value if isinstance(value, list | tuple | set) else [value]
        values = [str(v).strip() for v in values if v is not None and str(v).strip()]
        if not values:
            continue
        if key == "status":
            bad = [v for v in values if v not in STATUSES]
            if bad:
                errors.setdefault("filters.status", []).append(
                    f"неизвестный статус: {', '.join(bad)}")
        out[key] = list(dict.fromkeys(values))
    if errors:
        raise ValidationFailed("Неверный фильтр передачи", fields=errors)
    return out


def receiver_ids(to_user_ids, from_user_id: uuid.UUID) -> list[uuid.UUID]:
    """One id or a list of them -> distinct UUIDs in the given order (which is the order of the
    round-robin). Nobody may be both the one who gives and one who receives."""
    values = to_user_ids if isinstance(to_user_ids, list | tuple) else [to_user_ids]
    values = [v for v in values if v not in (None, "")]
    if not values:
        raise ValidationFailed("Кому передать клиентов?",
                               fields={"to_user_ids": ["нужен хотя бы один получатель"]})
    out: list[uuid.UUID] = []
    for value in values:
        try:
            user_id = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except (ValueError, TypeError):
            raise ValidationFailed("Неверный получатель",
                                   fields={"to_user_ids": [f"{value!r} — не UUID"]}) from None
        if user_id not in out:
            out.append(user_id)
    if from_user_id in out:
        raise ValidationFailed("Нельзя передать клиентов самому себе",
                               fields={"to_user_ids": ["совпадает с from_user_id"]})
    return out


def spread(items: list, receivers: list) -> list[tuple[object, object]]:
    """Round-robin: item ``i`` goes to ``receivers[i % len(receivers)]``. ``items`` must already be
    in a stable order (e.g. by creation time and id) so that the result can be predicted."""
    if not receivers:
        raise ValueError("no receivers")
    return [(item, receivers[i % len(receivers)]) for i, item in enumerate(items)]


def counts_per_receiver(assignment: list[tuple[object, object]], receivers: list) -> dict:
    counts = {receiver: 0 for receiver in receivers}
    for _item, receiver in assignment:
        counts[receiver] += 1
    return counts


# --- merge --------------------------------------------------------------------------------------

# Survivor fields filled from the merged card when the survivor has none.
FILL_FIELDS = ("full_name", "legal_form", "inn", "kpp", "ogrn", "region", "website", "industry",
               "segment", "source", "erp_partner_guid", "erp_counterparty_guid")
UNION_FIELDS = ("phones", "emails", "addresses")
# Timestamps of the client's life: the survivor keeps the later one.
LATEST_FIELDS = ("last_interaction_at", "last_invoice_at")


def _empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _same_text(a, b) -> bool:
    return " ".join(str(a).split()).casefold() == " ".join(str(b).split()).casefold()


def merge_refusal(survivor: dict, merged: dict) -> None:
    """Raise ``Conflict`` when ``merged`` may not be merged into ``survivor``."""
    if survivor["id"] == merged["id"]:
        raise Conflict("Нельзя объединить клиента с самим собой", code="same_client")
    for row in (survivor, merged):
        if row.get("merged_into") is not None:
            raise Conflict(f"Клиент «{row['short_name']}» уже объединён с другим",
                           code="already_merged",
                           extra={"client_id": str(row["id"]),
                                  "merged_into": str(row["merged_into"])})
    # Different legal identifiers mean different counterparties (or branches): never one client.
    for key, label, what in (("inn", "ИНН", "разные юридические лица"),
                             ("kpp", "КПП", "разные обособленные подразделения"),
                             ("ogrn", "ОГРН", "разные юридические лица")):
        mine, theirs = survivor.get(key), merged.get(key)
        if not _empty(mine) and not _empty(theirs) and mine != theirs:
            raise Conflict(
                f"У клиентов разные {label} ({mine} и {theirs}): это {what}, "
                "их нельзя объединить", code=f"different_{key}",
                extra={f"survivor_{key}": mine, f"merged_{key}": theirs})

def union_values(first: list | None, second: list | None) -> list:
    """``first`` then what ``second`` adds, without duplicates, order kept."""
    return list(dict.fromkeys([*(first or []), *(second or [])]))


def union_addresses(first: list | None, second: list | None) -> list[dict]:
    """Addresses of both; one of the same kind and text (ignoring case and spaces) is kept once."""
    out: list[dict] = []
    for address in [*(first or []), *(second or [])]:
        if not any(a.get("kind") == address.get("kind")
                   and _same_text(a.get("text", ""), address.get("text", "")) for a in out):
            out.append(dict(address))
    return out


def merged_status(survivor_status: str, merged_status_: str) -> str:
    """The survivor's status, unless the merged card knows more: a client active under either card
    is active; a survivor still 'potential' takes the merged card's history (dormant, lost)."""
    if "active" in (survivor_status, merged_status_):
        return "active"
    if survivor_status == "potential":
        return merged_status_
    return survivor_status


@dataclass
class MergePlan:
    changes: dict = field(default_factory=dict)        # survivor column -> new value
    changed_fields: list[str] = field(default_factory=list)
    filled: dict = field(default_factory=dict)         # field -> value taken from the merged card
    not_taken: dict = field(default_factory=dict)      # field -> merged value the survivor overrode


def merge_cards(survivor: dict, merged: dict) -> MergePlan:
    """What the survivor's card becomes when ``merged`` joins it (call ``merge_refusal`` first)."""
    plan = MergePlan()

    def change(name, value):
        if value != survivor.get(name):
            plan.changes[name] = value
            plan.changed_fields.append(name)

    # The KPP belongs to an INN: take it only with the INN it belongs to.
    inn_after = survivor.get("inn") if not _empty(survivor.get("inn")) else merged.get("inn")
    for name in FILL_FIELDS:
        mine, theirs = survivor.get(name), merged.get(name)
        if _empty(theirs):
            continue
        if name == "kpp" and merged.get("inn") != inn_after:
            plan.not_taken[name] = theirs
            continue
        if _empty(mine):
            change(name, theirs)
            plan.filled[name] = theirs
        elif mine != theirs:
            plan.not_taken[name] = theirs

    change("phones", union_values(survivor.get("phones"), merged.get("phones")))
    change("emails", union_values(survivor.get("emails"), merged.get("emails")))
    change("addresses", union_addresses(survivor.get("addresses"), merged.get("addresses")))

    status = merged_status(survivor["status"], merged["status"])
    if status != survivor["status"]:
        change("status", status)

    for name in LATEST_FIELDS:
        theirs = merged.get(name)
        if theirs is not None and (survivor.get(name) is None or theirs > survivor[name]):
            change(name, theirs)
    return plan

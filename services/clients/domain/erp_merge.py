"""Counterparties from 1C and CRM clients: the pure part (no nameko, no database).

What a 1C counterparty (``erp_bridge.erp_counterparty_upserted``) becomes on the CRM side:

* ``read_counterparty`` turns the payload into a client card and contacts normalised and checked
  with the rules of a card typed by hand (``card.normalise_client`` / ``normalise_contact``). Bad
  data from 1C never fails the event: a value that does not pass (an INN with a wrong checksum, a
  KPP of a sole trader, a phone that does not exist) is left out and named in ``problems``.
* ``pick_by_inn`` is the duplicate rule on requisites: INN+KPP exactly; the INN alone when one
  client has it without a KPP (a card entered without KPP is the same counterparty by the
  service's duplicate check), or when 1C sent no KPP and exactly one client has that INN. Several
  candidates with nothing to tell them apart: ambiguous, nothing is linked or created.
* ``plan_update`` is what 1C adds to a client it matched: the 1C link, card fields the client has
  empty (full name, legal form, INN, KPP of that INN, addresses), phones, e-mails and contact
  persons the client lacks — never one that belongs to another client, never a change of what is
  filled, never a deletion.
* ``match_manager`` maps the 1C responsible manager's name to an active CRM manager or sales head
  (case, ё/е, spaces, "Фамилия Имя" against "Фамилия Имя Отчество", initials).
* ``choose_department`` picks the pool of a client created without an owner, and ``region_of``
  reads the region from the KPP (else the INN): the tax office code's first two digits are the
  region's code.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from crm_platform.errors import ValidationFailed

from .card import normalise_client, normalise_contact
from .importing import EXTENSION_SUFFIX, SPLIT, person_key
from .normalize import split_legal_form

# ЮридическоеФизическоеЛицо of 1C -> the legal form when the name does not tell it.
LEGAL_KIND_FORMS = {"ИндивидуальныйПредприниматель": "ИП"}
# Roles of the staff who own clients.
OWNER_ROLES = ("manager", "sales_head")
# How addresses (plain texts from 1C, without their kind) go on a card: the first is the
# counterparty's main (legal) address in 1C's order of contact information, the others actual.
FIRST_ADDRESS_KIND = "legal"
OTHER_ADDRESS_KIND = "actual"

# Region codes of the Russian Federation (the first two digits of a tax office code, so of the KPP
# and the INN) -> ISO 3166-2:RU. Codes of former autonomous okrugs point to the region they joined;
# 99 (inter-regional offices of the largest taxpayers) and regions without an ISO code are absent.
REGION_BY_CODE = {
    "01": "RU-AD", "02": "RU-BA", "03": "RU-BU", "04": "RU-AL", "05": "RU-DA", "06": "RU-IN",
    "07": "RU-KB", "08": "RU-KL", "09": "RU-KC", "10": "RU-KR", "11": "RU-KO", "12": "RU-ME",
    "13": "RU-MO", "14": "RU-SA", "15": "RU-SE", "16": "RU-TA", "17": "RU-TY", "18": "RU-UD",
    "19": "RU-KK", "20": "RU-CE", "21": "RU-CU", "22": "RU-ALT", "23": "RU-KDA", "24": "RU-KYA",
    "25": "RU-PRI", "26": "RU-STA", "27": "RU-KHA", "28": "RU-AMU", "29": "RU-ARK",
    "30": "RU-AST", "31": "RU-BEL", "32": "RU-BRY", "33": "RU-VLA", "34": "RU-VGG",
    "35": "RU-VLG", "36": "RU-VOR", "37": "RU-IVA", "38": "RU-IRK", "39": "RU-KGD",
    "40": "RU-KLU", "41": "RU-KAM", "42": "RU-KEM", "43": "RU-KIR", "44": "RU-KOS",
    "45": "RU-KGN", "46": "RU-KRS", "47": "RU-LEN", "48": "RU-LIP", "49": "RU-MAG",
    "50": "RU-MOS", "51": "RU-MUR", "52": "RU-NIZ", "53": "RU-NGR", "54": "RU-NVS",
    "55": "RU-OMS", "56": "RU-ORE", "57": "RU-ORL", "58": "RU-PNZ", "59": "RU-PER",
    "60": "RU-PSK", "61": "RU-ROS", "62": "RU-RYA", "63": "RU-SAM", "64": "RU-SAR",
    "65": "RU-SAK", "66": "RU-SVE", "67": "RU-SMO", "68": "RU-TAM", "69": "RU-TVE",
    "70": "RU-TOM", "71": "RU-TUL", "72": "RU-TYU", "73": "RU-ULY", "74": "RU-CHE",
    "75": "RU-ZAB", "76": "RU-YAR", "77": "RU-MOW", "78": "RU-SPE", "79": "RU-YEV",
    "80": "RU-ZAB", "81": "RU-PER", "82": "RU-KAM", "83": "RU-NEN", "84": "RU-KYA",
    "85": "RU-IRK", "86": "RU-KHM", "87": "RU-CHU", "88": "RU-KYA", "89": "RU-YAN",
}
# The KPP's reason code of a registration as one of the largest taxpayers: its office is not the
# region the company works in.
LARGEST_TAXPAYER_REASON = "50"


def region_of(inn: str | None, kpp: str | None) -> str | None:
    """The region of a counterparty's tax registration: from the KPP (where it is registered
    now), else from the INN (where the number was given), None when neither tells."""
    if kpp and kpp[4:6] != LARGEST_TAXPAYER_REASON and kpp[:2] in REGION_BY_CODE:
        return REGION_BY_CODE[kpp[:2]]
    if inn:
        return REGION_BY_CODE.get(inn[:2])
    return None


# -- reading a counterparty -----------------------------------------------------------------------

@dataclass
class Counterparty:
    """A 1C counterparty as a CRM card (normalised) with its contact persons."""

    guid: uuid.UUID
    client_id: uuid.UUID | None
    card: dict
    contacts: list[dict]
    deletion_mark: bool = False
    manager_name: str | None = None
    problems: list[dict] = field(default_factory=list)  # {field, value, reason}: left out

    @property
    def inn(self) -> str | None:
        return self.card.get("inn")

    @property
    def kpp(self) -> str | None:
        return self.card.get("kpp")


def _text(value) -> str:
    return " ".join(str(value or "").split())


def _reasons(exc: ValidationFailed) -> str:
    return "; ".join(reason for reasons in exc.fields.values()
                     for reason in (reasons if isinstance(reasons, list) else [str(reasons)]))


class _Reader:
    def __init__(self):
        self.problems: list[dict] = []

    def problem(self, name: str, value, reason: str) -> None:
        self.problems.append({"field": name, "value": _text(value)[:300], "reason": reason})

    def check(self, name: str, data: dict, value) -> dict | None:
        """``data`` through the card's own rules (partial), or None with the problem noted."""
        try:
            return normalise_client(data, partial=True)
        except ValidationFailed as exc:
            self.problem(name, value, _reasons(exc))
            return None

    def values(self, kind: str, raw, name: str) -> list[str]:
        """Phones or e-mails, each checked alone: one bad number does not lose the others."""
        out: list[str] = []
        for item in raw or ():
            text = str(item or "")
            if kind == "phones":
                text = EXTENSION_SUFFIX.sub("", text)
            for part in SPLIT.split(text):
                part = part.strip()
                if not part:
                    continue
                checked = self.check(name, {kind: [part]}, part)
                if checked and checked[kind][0] not in out:
                    out.append(checked[kind][0])
        return out

    def short_name(self, payload: dict, guid) -> str:
        for candidate in (payload.get("name"), payload.get("full_name")):
            text = _text(candidate)
            if text and self.check("short_name", {"short_name": text}, text) is not None:
                return text
        fallback = (_text(payload.get("name")) or _text(payload.get("full_name")))[:250]
        return f"{fallback} (1С {guid})" if fallback else f"Контрагент 1С {guid}"

    def contact(self, raw: dict, index: int) -> dict | None:
        where = f"contacts.{index}"
        name = _text(raw.get("full_name"))
        position = _text(raw.get("position")) or None
        phones = self.values("phones", raw.get("phones"), f"{where}.phones")
        emails = self.values("emails", raw.get("emails"), f"{where}.emails")
        if position and len(position) > 200:
            self.problem(f"{where}.position", position, "длиннее 200 знаков")
            position = None
        try:
            return normalise_contact({"full_name": name, "position": position,
                                      "phones": phones, "emails": emails})
        except ValidationFailed as exc:
            self.problem(f"{where}.full_name", name, _reasons(exc))
            return None


def read_counterparty(payload: dict) -> Counterparty:
    """The payload of ``erp_counterparty_upserted`` as a CRM card (``source`` "erp", linked to
    the counterparty) and contacts; what does not pass the card's rules is left out and noted."""
    guid = payload["counterparty_guid"]
    reader = _Reader()
    raw: dict = {"short_name": reader.short_name(payload, guid), "source": "erp",
                 "erp_counterparty_guid": str(guid)}

    full_name = _text(payload.get("full_name"))
    if full_name and reader.check("full_name", {"full_name": full_name}, full_name):
        raw["full_name"] = full_name

    inn_raw, kpp_raw = _text(payload.get("inn")), _text(payload.get("kpp"))
    inn = (reader.check("inn", {"inn": inn_raw}, inn_raw) or {}).get("inn") if inn_raw else None
    kpp = (reader.check("kpp", {"kpp": kpp_raw}, kpp_raw) or {}).get("kpp") if kpp_raw else None
    if kpp and not inn:
        reader.problem("kpp", kpp, "КПП без действительного ИНН не сохранён")
        kpp = None
    elif kpp and len(inn) == 12:
        reader.problem("kpp", kpp, "у индивидуального предпринимателя нет КПП")
        kpp = None
    raw.update(inn=inn, kpp=kpp, region=region_of(inn, kpp))

    raw["phones"] = reader.values("phones", payload.get("phones"), "phones")
    raw["emails"] = reader.values("emails", payload.get("emails"), "emails")
    addresses: list[dict] = []
    for text in (_text(a) for a in payload.get("addresses") or ()):
        if not text or any(person_key(a["text"]) == person_key(text) for a in addresses):
            continue
        kind = FIRST_ADDRESS_KIND if not addresses else OTHER_ADDRESS_KIND
        if reader.check("addresses", {"addresses": [{"kind": kind, "text": text}]}, text):
            addresses.append({"kind": kind, "text": text})
    raw["addresses"] = addresses

    card = normalise_client(raw)
    if not card.get("legal_form"):
        form = (split_legal_form(full_name)[0] if full_name else None) \
            or LEGAL_KIND_FORMS.get(_text(payload.get("legal_kind")))
        if form:
            card["legal_form"] = form

    contacts: list[dict] = []
    for index, raw_contact in enumerate(payload.get("contacts") or ()):
        contact = reader.contact(raw_contact, index)
        if contact is None:
            continue
        same = next((c for c in contacts
                     if person_key(c["full_name"]) == person_key(contact["full_name"])), None)
        if same is None:
            contacts.append(contact)
        else:  # one person twice in 1C: one contact with the numbers of both
            for kind in ("phones", "emails"):
                same[kind] += [v for v in contact[kind] if v not in same[kind]]
            same["position"] = same["position"] or contact["position"]
    return Counterparty(guid=guid, client_id=payload.get("client_id"), card=card,
                        contacts=contacts, deletion_mark=bool(payload.get("deletion_mark")),
                        manager_name=_text(payload.get("manager_name")) or None,
                        problems=reader.problems)


# -- the duplicate rule on requisites -------------------------------------------------------------

@dataclass
class Pick:
    client: dict | None = None
    by: str | None = None            # inn_kpp | inn
    ambiguous: list[dict] = field(default_factory=list)


def _oldest(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r.get("created_at") is None, r.get("created_at"),
                                       str(r["id"])))


def pick_by_inn(inn: str | None, kpp: str | None, rows: list[dict]) -> Pick:
    """The client that is this counterparty by its requisites, among ``rows`` (live clients that
    have ``inn``). INN+KPP exactly (several such: the oldest, they are duplicates already); else a
    single client with this INN and no KPP; with no KPP from 1C, the only client of that INN.
    Other branches (the same INN, another KPP) are other clients: no pick."""
    if not inn:
        return Pick()
    rows = _oldest([r for r in {str(r["id"]): r for r in rows}.values() if r.get("inn") == inn])
    if kpp:
        exact = [r for r in rows if r.get("kpp") == kpp]
        if exact:
            return Pick(exact[0], "inn_kpp")
    elif len(rows) == 1:
        return Pick(rows[0], "inn")
    without_kpp = [r for r in rows if not r.get("kpp")]
    if len(without_kpp) == 1:
        return Pick(without_kpp[0], "inn")
    if len(without_kpp) > 1 or (not kpp and rows):
        return Pick(ambiguous=without_kpp or rows)
    return Pick()


# -- what 1C adds to a client it matched ----------------------------------------------------------

# Card fields filled from 1C when the client has them empty (the INN and KPP by their own rules).
FILL_FIELDS = ("full_name", "legal_form")


@dataclass
class UpdatePlan:
    changes: dict = field(default_factory=dict)               # card column -> new value
    new_contacts: list[dict] = field(default_factory=list)
    contact_changes: list[tuple[dict, dict]] = field(default_factory=list)  # (contact, changes)
    skipped: list[dict] = field(default_factory=list)         # {kind, value, client_id}
    not_taken: dict = field(default_factory=dict)             # field -> 1C value kept out

    @property
    def changed_fields(self) -> list[str]:
        fields = sorted(self.changes)
        if self.new_contacts or self.contact_changes:
            fields.append("contacts")
        return fields

    @property
    def empty(self) -> bool:
        return not (self.changes or self.new_contacts or self.contact_changes)


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == ()


def plan_update(client: dict, contacts: list[dict], incoming: Counterparty,
                foreign: dict[tuple[str, str], str],
                requisites_owner: dict | None = None) -> UpdatePlan:
    """What ``incoming`` adds to ``client`` (with its ``contacts``). ``foreign`` maps a
    (kind, value) identifier to another client that has it: such phones and e-mails are skipped.
    ``requisites_owner`` is another client that the INN/KPP of 1C designate (by ``pick_by_inn``):
    then those requisites are not put on this client either."""
    plan = UpdatePlan()
    card = incoming.card

    if _empty(client.get("erp_counterparty_guid")):
        plan.changes["erp_counterparty_guid"] = incoming.guid
    elif str(client["erp_counterparty_guid"]) != str(incoming.guid):
        plan.not_taken["erp_counterparty_guid"] = str(incoming.guid)

    inn, kpp = card.get("inn"), card.get("kpp")
    other_entity = bool(client.get("inn") and inn and client["inn"] != inn)
    if other_entity:
        plan.not_taken["inn"] = inn
        if kpp:
            plan.not_taken["kpp"] = kpp
    else:
        inn_after = client.get("inn")
        if not inn_after and inn:
            if requisites_owner is not None:
                plan.skipped.append({"kind": "inn", "value": inn,
                                     "client_id": str(requisites_owner["id"])})
            else:
                plan.changes["inn"] = inn_after = inn
        for name in FILL_FIELDS:
            if _empty(client.get(name)) and not _empty(card.get(name)):
                plan.changes[name] = card[name]
        # The KPP belongs to its INN (``read_counterparty`` keeps one only with a 10-digit INN).
        if kpp and inn_after == inn:
            if not _empty(client.get("kpp")):
                if client["kpp"] != kpp:
                    plan.not_taken["kpp"] = kpp
            elif requisites_owner is not None:
                plan.skipped.append({"kind": "inn_kpp", "value": f"{inn}/{kpp}",
                                     "client_id": str(requisites_owner["id"])})
            else:
                plan.changes["kpp"] = kpp

    if _empty(client.get("addresses")) and card.get("addresses"):
        plan.changes["addresses"] = list(card["addresses"])

    known = {"phones": set(client.get("phones") or ()), "emails": set(client.get("emails") or ())}
    for contact in contacts:
        for kind in known:
            known[kind].update(contact.get(kind) or ())

    def fresh(kind: str, values) -> list[str]:
        out = []
        for value in values or ():
            if value in known[kind]:
                continue
            owner = foreign.get((kind[:-1], value))
            if owner is not None:
                if not any(s["kind"] == kind[:-1] and s["value"] == value for s in plan.skipped):
                    plan.skipped.append({"kind": kind[:-1], "value": value, "client_id": owner})
                continue
            known[kind].add(value)
            out.append(value)
        return out

    for kind in ("phones", "emails"):
        added = fresh(kind, card.get(kind))
        if added:
            plan.changes[kind] = list(client.get(kind) or ()) + added

    pending = list(contacts)
    for incoming_contact in incoming.contacts:
        same = _same_contact(pending, incoming_contact)
        phones = fresh("phones", incoming_contact.get("phones"))
        emails = fresh("emails", incoming_contact.get("emails"))
        if same is None:
            contact = {**incoming_contact, "phones": phones, "emails": emails}
            plan.new_contacts.append(contact)
            pending.append(contact)
            continue
        if any(same is c for c in plan.new_contacts):
            same["phones"] += phones
            same["emails"] += emails
            continue
        changes: dict = {}
        if phones:
            changes["phones"] = list(same.get("phones") or ()) + phones
        if emails:
            changes["emails"] = list(same.get("emails") or ()) + emails
        if incoming_contact.get("position") and not same.get("position"):
            changes["position"] = incoming_contact["position"]
        if changes:
            plan.contact_changes.append((same, changes))
    return plan


def _same_contact(contacts: list[dict], incoming: dict) -> dict | None:
    """A contact person of the client who is ``incoming``: the same name, else a shared phone or
    e-mail."""
    name = person_key(incoming.get("full_name"))
    for contact in contacts:
        if name and person_key(contact.get("full_name")) == name:
            return contact
    ids = set(incoming.get("phones") or ()) | set(incoming.get("emails") or ())
    for contact in contacts:
        if ids & (set(contact.get("phones") or ()) | set(contact.get("emails") or ())):
            return contact
    return None


def without_foreign(incoming: Counterparty,
                    foreign: dict[tuple[str, str], str]) -> tuple[dict, list[dict], list[dict]]:
    """The card and contacts of a client to create, without phones and e-mails that belong to
    other clients; and what was skipped."""
    skipped: list[dict] = []

    def keep(kind: str, values) -> list[str]:
        out = []
        for value in values or ():
            owner = foreign.get((kind[:-1], value))
            if owner is None:
                out.append(value)
            elif not any(s["kind"] == kind[:-1] and s["value"] == value for s in skipped):
                skipped.append({"kind": kind[:-1], "value": value, "client_id": owner})
        return out

    card = {**incoming.card, "phones": keep("phones", incoming.card.get("phones")),
            "emails": keep("emails", incoming.card.get("emails"))}
    contacts = [{**c, "phones": keep("phones", c.get("phones")),
                 "emails": keep("emails", c.get("emails"))} for c in incoming.contacts]
    return card, contacts, skipped


# -- the owner ------------------------------------------------------------------------------------

def name_tokens(name: str | None) -> list[str]:
    """``"  ИВАНОВ  Пётр И."`` -> ``["иванов", "петр", "и"]``."""
    return re.findall(r"[0-9a-zа-я]+", (name or "").casefold().replace("ё", "е"))


def _compatible(a: str, b: str) -> bool:
    """Two words of a name: equal, or one is the other's initial."""
    if a == b:
        return True
    return (len(a) == 1 and b.startswith(a)) or (len(b) == 1 and a.startswith(b))


def same_person(a: str | None, b: str | None) -> str | None:
    """``"exact"`` for the same words, ``"partial"`` for a name and its shorter form ("Фамилия
    Имя" and "Фамилия Имя Отчество", or with initials: the surname in full and at least two
    words), None otherwise."""
    one, two = name_tokens(a), name_tokens(b)
    if not one or not two:
        return None
    if one == two:
        return "exact"
    short, long_ = sorted((one, two), key=len)
    if len(short) < 2 or short[0] != long_[0] or len(short[0]) < 2:
        return None
    if all(_compatible(x, y) for x, y in zip(short, long_, strict=False)):
        return "partial"
    return None


@dataclass
class ManagerMatch:
    member: dict | None
    reason: str   # matched | no_manager | not_found | ambiguous
    candidates: list[str] = field(default_factory=list)


def match_manager(name: str | None, staff: list[dict]) -> ManagerMatch:
    """The active manager or sales head whose name is the 1C manager's: one exact match wins,
    else exactly one partial match; several (namesakes): nobody."""
    if not name_tokens(name):
        return ManagerMatch(None, "no_manager")
    eligible = [m for m in staff if m.get("active") and m.get("role") in OWNER_ROLES]
    graded = [(same_person(name, m["full_name"]), m) for m in eligible]
    for grade in ("exact", "partial"):
        found = [m for g, m in graded if g == grade]
        if len(found) == 1:
            return ManagerMatch(found[0], "matched")
        if found:
            return ManagerMatch(None, "ambiguous", [str(m["user_id"]) for m in found])
    return ManagerMatch(None, "not_found")


def choose_department(configured, region: str | None,
                      departments: list[dict]) -> tuple[object, str]:
    """The department whose pool gets a client from 1C without an owner, and why: the configured
    one (``ERP_CLIENTS_DEPARTMENT_ID``); else the only department covering the client's region;
    else none."""
    if configured is not None:
        return configured, "configured"
    if region:
        covering = [d for d in departments if region in (d.get("regions") or ())]
        if len(covering) == 1:
            return covering[0]["department_id"], "region"
        if covering:
            return None, "region_ambiguous"
    return None, "none"

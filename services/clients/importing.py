"""Entrypoints of the clients service for import of clients and contacts from Excel and CSV files.

A mixin of ``ClientsService`` (nameko finds inherited entrypoints): it uses the service's
``db``, ``outbox``, ``caller`` and ``config`` and its helpers (``_initial_owner``,
``_resolve_duplicate``, ``_refuse_collision``; ``_matches`` in batch form, see below).

``import_clients`` reads the file and normalises every row (``domain.importing``, in a real thread
so a big sheet does not stall the eventlet hub), then, inside ONE transaction, decides every row
in file order:

* a row with bad values is refused with its errors (field, column, value, reasons);
* a row that repeats an earlier row of the file (INN, phone, e-mail, name) is merged into the
  client that row became: its phones, e-mails and contacts are added;
* otherwise the base's duplicate check decides: no blocking match creates the client; a match with
  a client of the same owner (or of the same department pool) merges the row into it; a match with
  someone else's client refuses the row with the answer ``create_client`` gives — who owns it and
  in which department (``_resolve_duplicate``).

The duplicate check is the service's ``_matches`` — the same identifier index, trigram search,
``matching.rank`` and owner names — run for the whole file in a few set queries instead of five
round trips per row (row by row it took about 20 ms a row here: seven minutes for 20,000 rows).
``batch_matches`` gives what ``_matches`` gives for each row, except that the similar-name search
is skipped where it cannot change the decision (a test holds the two equal).

Refused rows are only reported; everything accepted is written at the end of that one transaction,
with a ``client_created`` event per created client, ``client_updated`` per existing client that got
something, an audit entry ``import`` per client and one summary entry. A file that cannot be read
is refused as a whole (422) before anything is written, and a failure half-way rolls everything
back. A dry run makes the same decisions and skips the writing, so its report is what the real
import would do.

A real import locks the duplicate index (``identifiers``) until it commits: per-key advisory
locks, as ``create_client`` takes them, would not fit PostgreSQL's lock table for 20,000 rows, and
without a lock a manager could enter the same client between the import's check and its commit.
Duplicate checks and creations elsewhere wait meanwhile, so the slow part (the similar-name search)
runs before the lock; under it the identifier hits are read again and rows whose hits changed are
checked again in full. What stays open is a client entered with no identifiers, only a similar name,
in that moment — ``create_client`` locks exact keys and the exact name only, too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from eventlet import tpool
from sqlalchemy.exc import OperationalError

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, DomainError
from crm_platform.idempotency import idempotent
from crm_platform.rpc import rpc

from . import store
from .domain import access
from .domain.card import identifiers_of
from .domain.importing import ImportRow, decode_file, plan_merge, prepare
from .domain.matching import rank
from .models import audit_log, clients, identifiers, ownership_history
from .models import contacts as contact_table
from .payloads import CARD_FIELDS, snapshot

IMPORT_ROLES = ("manager", "sales_head", "director")
# Reasons of a match that are exact identifiers (not a similar name).
IDENTIFIER_REASONS = {"inn", "inn_kpp", "phone", "email"}
# How long a real import waits for the duplicate index (another import, a long transaction).
LOCK_WAIT = "15s"
# As ``store.fuzzy_hits``: trigram threshold and candidates per name.
FUZZY_THRESHOLD = 0.5
FUZZY_LIMIT = 10
# Values per set query.
CHUNK = 1000
# From this many clients written, the tables are analysed before commit: until autovacuum gets to
# them the planner would take the freshly loaded tables for empty and check duplicates (the
# import's next run included) with nested loops over everything — seconds per query instead of ms.
ANALYZE_AFTER = 1000


def _str(value) -> str | None:
    return str(value) if value is not None else None


def _reasons(match: dict) -> str:
    return ", ".join(dict.fromkeys(r["reason"] for r in match["reasons"]))


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ImportEntrypoints:
    @rpc
    @idempotent
    def import_clients(self, file_base64: str, filename: str, mapping: dict,
                       dry_run: bool = False, owner_id: str | None = None) -> dict:
        """Import clients and their contacts from an ``.xlsx`` or ``.csv`` file (base64, at most
        10 MB and 20,000 rows). ``mapping`` maps a column header of the file to a field:
        ``short_name`` (required), ``full_name``, ``inn``, ``kpp``, ``ogrn``, ``region`` (RU-SVE),
        ``phones``, ``emails`` (several per cell, separated by ``,`` ``;`` or a line break),
        ``website``, ``industry``, ``segment``, ``status``, ``source``, ``address`` (legal),
        ``contact_name``, ``contact_position``, ``contact_phones``, ``contact_emails``, and
        ``owner_id`` (a manager's user id; empty: the import's owner).

        A manager imports for themself; a sales head or director may give ``owner_id`` (null: a
        sales head's department pool). Returns the report: ``totals`` (rows, created, merged,
        refused) and per row ``created`` / ``merged`` (into an existing client or an earlier row)
        / ``refused`` with the reason. All accepted rows are written in one transaction; with
        ``dry_run`` nothing is written. An unreadable file, a mapping that does not fit it, no
        rows or too many: 422 and nothing stored."""
        identity = self.caller.require(*IMPORT_ROLES)
        data = decode_file(file_base64)
        rows, _mapping = tpool.execute(prepare, data, filename or "", mapping)
        with self.db.session() as session:
            default_owner = self._initial_owner(session, identity, owner_id)
            run = ImportRun(self, session, identity, default_owner, filename, bool(dry_run))
            run.look_up(rows)
            if not dry_run:
                self._lock_duplicate_index(session)
                run.recheck()
            run.load_targets()
            for row in rows:
                run.apply(row)
            return run.finish()

    @staticmethod
    def _lock_duplicate_index(session) -> None:
        session.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
        try:
            session.execute(sa.text("LOCK TABLE identifiers IN ACCESS EXCLUSIVE MODE"))
        except OperationalError as exc:
            # lock_not_available after LOCK_WAIT; deadlock_detected when two imports that have
            # both read the index ask for it at once.
            if getattr(exc.orig, "pgcode", None) in ("55P03", "40P01"):
                raise Conflict("Сейчас идёт другой импорт клиентов: повторите позже",
                               code="import_busy") from None
            raise
        session.execute(sa.text("SET LOCAL lock_timeout TO DEFAULT"))


def exact_hits_of(session, candidates: list[tuple[dict, list[dict]]]) -> list[list[tuple]]:
    """The identifier index's hits of each (card, contacts), as ``store.exact_hits`` gives them to
    ``_matches``: (kind, value, client row) — for all candidates in a few queries."""
    keys_of = [list(dict.fromkeys((kind, value) for kind, value, _ in
                                  identifiers_of(card, contacts)))
               for card, contacts in candidates]
    found: dict[tuple[str, str], list] = {}
    for chunk in _chunks(sorted({key for keys in keys_of for key in keys})):
        for kind, value, row in store.exact_hits(session, [(k, v, None) for k, v in chunk]):
            found.setdefault((kind, value), []).append((kind, value, row))
    return [[hit for key in keys for hit in found.get(key, ())] for keys in keys_of]


def _fuzzy_hits_of(session, names: list[str]) -> dict[str, list]:
    """``store.fuzzy_hits`` for many name keys: one LATERAL query per chunk."""
    fuzzy: dict[str, list] = {}
    if not names:
        return fuzzy
    session.execute(sa.select(sa.func.set_limit(FUZZY_THRESHOLD)))
    # The planner cannot see the names inside VALUES and guesses a sequential scan of the whole
    # base per name (160 ms a name at 20,000 clients here, against 30 ms through the trigram
    # index); keep it on the index for these queries only.
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    c = clients.c
    for chunk in _chunks(names):
        wanted = sa.values(sa.column("key", sa.String), name="wanted").data(
            [(name,) for name in chunk])
        similarity = sa.func.similarity(c.name_key, wanted.c.key)
        hit = (sa.select(c.id, c.short_name, c.inn, c.kpp, c.status, c.owner_id,
                         c.department_id, similarity.label("similarity"))
               .where(c.name_key.op("%")(wanted.c.key), c.merged_into.is_(None))
               .order_by(similarity.desc()).limit(FUZZY_LIMIT).lateral("hit"))
        for row in session.execute(sa.select(wanted.c.key, hit).select_from(
                wanted.join(hit, sa.true()))).mappings():
            fuzzy.setdefault(row["key"], []).append((dict(row), float(row["similarity"])))
    session.execute(sa.text("SET LOCAL enable_seqscan TO DEFAULT"))
    return fuzzy


def batch_matches(session, candidates: list[tuple[dict, list[dict], bool]],
                  exact: list[list[tuple]] | None = None) -> list[list[dict]]:
    """``ClientsService._matches`` for many (card, contacts, with_names) at once: the same exact
    keys, the same trigram search, ``rank`` and owner names, in a few set queries.

    The similar-name search is the expensive part (milliseconds per name on a big base), so it
    is skipped where it cannot change the import's decision: for ``with_names=False`` (rows that
    repeat an earlier row: only their identifiers are checked) and for a card an identifier
    already ties to a client (identifier matches outrank name matches, and only identifier
    matches make a row ambiguous) — there the result lacks only the ``name`` reasons."""
    exact = exact if exact is not None else exact_hits_of(
        session, [(card, contacts) for card, contacts, _ in candidates])
    ranked_all = [rank(card, hits, []) for (card, _, _), hits in zip(candidates, exact,
                                                                     strict=True)]
    need_names = [i for i, (card, _, with_names) in enumerate(candidates)
                  if with_names and card.get("name_key")
                  and not any(match.blocking for match, _ in ranked_all[i])]
    fuzzy = _fuzzy_hits_of(session, sorted({candidates[i][0]["name_key"] for i in need_names}))
    for i in need_names:
        card = candidates[i][0]
        ranked_all[i] = rank(card, exact[i], fuzzy.get(card["name_key"], []))

    owners = {row["owner_id"] for ranked in ranked_all for _, row in ranked} - {None}
    departments = {row["department_id"] for ranked in ranked_all for _, row in ranked} - {None}
    names_of, depts_of = {}, {}
    for chunk in _chunks(sorted(owners, key=str)):
        names_of.update(store.staff_names(session, chunk))
    for chunk in _chunks(sorted(departments, key=str)):
        depts_of.update(store.department_names(session, chunk))
    return [[{
        "client_id": match.client_id, "short_name": row["short_name"], "inn": row["inn"],
        "kpp": row["kpp"], "status": row["status"], "score": match.score,
        "blocking": match.blocking, "reasons": match.reasons,
        "owner_id": str(row["owner_id"]) if row["owner_id"] else None,
        "owner_name": names_of.get(row["owner_id"]),
        "department_id": str(row["department_id"]) if row["department_id"] else None,
        "department_name": depts_of.get(row["department_id"]),
    } for match, row in ranked] for ranked in ranked_all]


def _signature(hits: list[tuple]) -> set:
    return {(kind, value, str(row["id"])) for kind, value, row in hits}


@dataclass
class Target:
    """A client rows of the file end up in: created by this import or already in the base."""

    card: dict
    contacts: list[dict]
    created: bool
    lines: list[int] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)       # card fields, and "contacts"
    new_contacts: list[dict] = field(default_factory=list)
    touched_contacts: dict = field(default_factory=dict)  # id -> contact (existing ones changed)

    @property
    def id(self):
        return self.card["id"]


class ImportRun:
    """One import inside one transaction: the base is looked up for the whole file, rows are
    decided in file order in memory, and everything accepted is written at the end."""

    def __init__(self, service, session, identity, default_owner, filename, dry_run: bool):
        self.service = service
        self.session = session
        self.identity = identity
        self.filename = filename
        self.dry_run = dry_run
        self.now = utcnow()
        self.import_id = uuid.uuid4()
        self.default_owner = default_owner
        self.owners: dict[str | None, tuple | DomainError] = {None: default_owner}
        self.matches: dict[int, list[dict]] = {}
        self.targets: dict[str, Target] = {}
        self.target_of_line: dict[int, str] = {}
        self.entries: dict[int, dict] = {}

    # -- reading the base -------------------------------------------------------------------------
    def look_up(self, rows: list[ImportRow]) -> None:
        """The duplicate check of every row that needs one (before the lock: it is the slow
        part)."""
        self.checked = [row for row in rows if row.card is not None and not row.ambiguous]
        self.candidates = [(row.card, row.contacts, row.duplicate_of is None)
                           for row in self.checked]
        self.exact = exact_hits_of(self.session, [(c, k) for c, k, _ in self.candidates])
        found = batch_matches(self.session, self.candidates, self.exact)
        self.matches = {row.line: m for row, m in zip(self.checked, found, strict=True)}

    def recheck(self) -> None:
        """Under the lock: the identifier index again; rows whose hits changed since
        ``look_up`` (someone entered a client meanwhile) are checked again in full."""
        now = exact_hits_of(self.session, [(c, k) for c, k, _ in self.candidates])
        changed = [i for i, (before, after) in enumerate(zip(self.exact, now, strict=True))
                   if _signature(before) != _signature(after)]
        if changed:
            found = batch_matches(self.session, [self.candidates[i] for i in changed],
                                  [now[i] for i in changed])
            for i, matches in zip(changed, found, strict=True):
                self.matches[self.checked[i].line] = matches

    def load_targets(self) -> None:
        """The existing clients rows may merge into (locked until commit, unless a dry run)."""
        wanted = sorted({m["client_id"] for matches in self.matches.values()
                         for m in matches[:1] if m["blocking"]})
        for chunk in _chunks(wanted):
            ids = [uuid.UUID(i) for i in chunk]
            query = (sa.select(clients).where(clients.c.id.in_(ids),
                                              clients.c.merged_into.is_(None))
                     .order_by(clients.c.id))
            if not self.dry_run:
                query = query.with_for_update()
            cards = self.session.execute(query).mappings().all()
            contacts = store.contacts_of(self.session, ids)
            for card in cards:
                self.targets[str(card["id"])] = Target(
                    card=dict(card), contacts=contacts.get(card["id"], []), created=False)

    # -- per row ----------------------------------------------------------------------------------
    def apply(self, row: ImportRow) -> None:
        if row.card is None:
            return self._refuse(row, "validation_failed",
                                "Строка не прошла проверку: " + "; ".join(
                                    f"{e['column'] or e['field']}: {', '.join(e['reasons'])}"
                                    for e in row.errors), errors=row.errors)
        if row.ambiguous:
            lines = ", ".join(str(n) for n in row.ambiguous)
            return self._refuse(row, "ambiguous_in_file",
                                f"Строка совпадает с разными клиентами из строк {lines}: "
                                "объедините или разделите их в файле")
        owner = self._owner_for(row)
        if isinstance(owner, DomainError):
            return self._refuse(row, owner.code, owner.detail, **owner.extra)
        if row.duplicate_of is not None:
            return self._apply_repeat(row, owner)

        blocking = [m for m in self.matches[row.line] if m["blocking"]]
        if not blocking:
            return self._create(row, owner)
        match = blocking[0]
        others = [m for m in blocking[1:] if m["client_id"] != match["client_id"]
                  and {r["reason"] for r in m["reasons"]} & IDENTIFIER_REASONS]
        if others:
            names = "; ".join(f"«{m['short_name']}» (менеджер {m['owner_name'] or '—'}, "
                              f"по {_reasons(m)})" for m in [match, *others])
            return self._refuse(row, "ambiguous_match",
                                f"Строка совпадает сразу с несколькими клиентами: {names}. "
                                "Разберите дубликаты вручную",
                                client_ids=[m["client_id"] for m in [match, *others]])
        target = self.targets.get(match["client_id"])
        if target is None or not self._may_merge(target, owner):
            return self._refuse_match(row, match)
        self._merge(row, target, _reasons(match))

    def _apply_repeat(self, row: ImportRow, owner) -> None:
        leader = self.entries[row.duplicate_of]
        if leader["status"] == "refused":
            return self._refuse(row, "duplicate_of_refused",
                                f"Строка повторяет строку {row.duplicate_of}, которая не принята: "
                                f"{leader['reason']}",
                                duplicate_of_row=row.duplicate_of,
                                **{k: leader[k] for k in ("client_id", "owner", "department")
                                   if leader.get(k)})
        target = self.targets[self.target_of_line[row.duplicate_of]]
        # The row's own identifiers must not belong to a third client.
        collisions = [m for m in self.matches[row.line]
                      if m["blocking"] and m["client_id"] != str(target.id)
                      and {r["reason"] for r in m["reasons"]} & IDENTIFIER_REASONS]
        if collisions:
            return self._refuse_match(row, collisions[0], collision=True)
        warnings = []
        if row.owner and owner[0] is not None and _str(owner[0]) != _str(target.card["owner_id"]):
            warnings.append(f"владелец из файла не применён: строка объединена с клиентом "
                            f"строки {row.duplicate_of}")
        self._merge(row, target, ", ".join(dict.fromkeys(r["reason"] for r in row.matched_by)),
                    warnings=warnings)

    def _owner_for(self, row: ImportRow):
        if row.owner not in self.owners:
            try:
                self.owners[row.owner] = self.service._initial_owner(
                    self.session, self.identity, row.owner)
            except DomainError as exc:
                exc.extra = {**exc.extra, "errors": [
                    {"field": "owner_id", "column": None, "value": row.owner,
                     "reasons": [exc.detail]}]}
                self.owners[row.owner] = exc
        return self.owners[row.owner]

    def _may_merge(self, target: Target, owner) -> bool:
        """Into a client of the row's owner (or of the same pool) that the importer may edit."""
        owner_id, department_id = owner
        card = target.card
        if not access.can_edit(self.identity, card):
            return False
        if owner_id is not None:
            return _str(card["owner_id"]) == _str(owner_id)
        return card["owner_id"] is None and _str(card["department_id"]) == _str(department_id)

    def _refuse_match(self, row: ImportRow, match: dict, collision: bool = False) -> None:
        """The refusal ``create_client`` would give for this match, as a report entry."""
        try:
            if collision:
                self.service._refuse_collision(match)
            mine = self.service._resolve_duplicate(self.session, self.identity, match, False)
        except DomainError as exc:  # Conflict; NotFound when merged away meanwhile
            return self._refuse(row, exc.code, exc.detail, **exc.extra)
        # The importer's own client, while the row is imported for another owner.
        return self._refuse(row, "client_owned",
                            f"Клиент «{mine['short_name']}» уже закреплён за вами, а строка "
                            "импортируется для другого владельца",
                            client_id=match["client_id"], owner_id=match["owner_id"],
                            owner=match["owner_name"], department=match["department_name"],
                            matched_by=_reasons(match))

    def _create(self, row: ImportRow, owner) -> None:

        owner_id, department_id = owner
        card, identity, now = row.card, self.identity, self.now
        client = {**{f: card.get(f) for f in CARD_FIELDS}, "id": uuid.uuid4(),
                  "name_key": card["name_key"], "owner_id": owner_id,
                  "department_id": department_id, "owned_since": now if owner_id else None,
                  "created_at": now, "created_by": identity.user_id, "updated_at": now,
                  "updated_by": identity.user_id, "version": 1}
        contacts = [{**incoming, "id": uuid.uuid4()} for incoming in row.contacts]
        target = Target(card=client, contacts=contacts, created=True, lines=[row.line])
        self.targets[str(client["id"])] = target
        self.target_of_line[row.line] = str(client["id"])
        self.entries[row.line] = {"row": row.line, "status": "created",
                                  "client_id": str(client["id"]),
                                  "short_name": client["short_name"],
                                  "contacts_added": len(contacts)}

    def _merge(self, row: ImportRow, target: Target, matched_by: str,
               warnings: list[str] | None = None) -> None:
        plan = plan_merge(target.card, target.contacts, row.card, row.contacts)
        target.card.update(plan.changes)
        target.changed.update(plan.changes)
        for contact, changes in plan.contact_changes:
            contact.update({k: (list(contact.get(k) or ()) + v if isinstance(v, list) else v)
                            for k, v in changes.items()})
            if not target.created and all(contact is not c for c in target.new_contacts):
                target.touched_contacts[contact["id"]] = contact
        for incoming in plan.new_contacts:
            contact = {**incoming, "id": uuid.uuid4()}
            target.contacts.append(contact)
            if not target.created:
                target.new_contacts.append(contact)
        if plan.contact_changes or plan.new_contacts:
            target.changed.add("contacts")
        first_line = target.lines[0] if target.lines else None
        target.lines.append(row.line)
        self.target_of_line[row.line] = str(target.id)
        entry = {"row": row.line, "status": "merged", "client_id": str(target.id),
                 "short_name": target.card["short_name"],
                 "into": "file" if target.created else "existing", "matched_by": matched_by,
                 "added": plan.added, "warnings": [*(warnings or ()), *plan.warnings]}
        if target.created:
            entry["duplicate_of_row"] = row.duplicate_of or first_line
        self.entries[row.line] = entry

    def _refuse(self, row: ImportRow, code: str, reason: str, **extra) -> None:
        entry = {"row": row.line, "status": "refused", "code": code, "reason": reason}
        for key in ("client_id", "owner_id", "owner", "department", "matched_by",
                    "duplicate_of_row", "client_ids"):
            if extra.get(key) is not None:
                entry[key] = extra[key]
        entry["errors"] = extra.get("errors") or []
        self.entries[row.line] = entry

    # -- the end ----------------------------------------------------------------------------------
    def finish(self) -> dict:
        entries = [self.entries[line] for line in sorted(self.entries)]
        totals = {"rows": len(entries),
                  **{status: sum(e["status"] == status for e in entries)
                     for status in ("created", "merged", "refused")},
                  "merged_into_existing": sum(e.get("into") == "existing" for e in entries),
                  "clients_updated": sum(1 for t in self.targets.values()
                                         if not t.created and t.changed)}
        owner_id, department_id = self.default_owner
        if not self.dry_run:
            self._write(totals)
        return {"import_id": str(self.import_id), "dry_run": self.dry_run,
                "filename": self.filename, "owner_id": _str(owner_id),
                "department_id": _str(department_id), "totals": totals, "rows": entries}

    def _write(self, totals: dict) -> None:

        identity, now, session = self.identity, self.now, self.session
        created = [t for t in self.targets.values() if t.created]
        updated = [t for t in self.targets.values() if not t.created and t.changed]
        stamp = {"created_at": now, "created_by": identity.user_id, "updated_at": now,
                 "updated_by": identity.user_id}

        for chunk in _chunks(created):
            session.execute(sa.insert(clients), [t.card for t in chunk])
        new_contacts = [{**c, "client_id": t.id, **stamp} for t in created for c in t.contacts]
        new_contacts += [{**c, "client_id": t.id, **stamp} for t in updated
                         for c in t.new_contacts]
        for chunk in _chunks(new_contacts):
            session.execute(sa.insert(contact_table), chunk)
        keys = [{"kind": kind, "value": value, "client_id": t.id, "contact_id": contact_id}
                for t in created
                for (kind, value), contact_id in {
                    (k, v): c for k, v, c in identifiers_of(t.card, t.contacts)}.items()]
        for chunk in _chunks(keys):
            session.execute(sa.insert(identifiers), chunk)

        for target in updated:
            fields = sorted(target.changed - {"contacts"})
            session.execute(sa.update(clients).where(clients.c.id == target.id).values(
                **{f: target.card[f] for f in fields}, updated_at=now,
                updated_by=identity.user_id, version=clients.c.version + 1))
            target.card.update(updated_at=now, version=target.card["version"] + 1)
            for contact in target.touched_contacts.values():
                session.execute(sa.update(contact_table)
                                .where(contact_table.c.id == contact["id"])
                                .values(phones=contact["phones"], emails=contact["emails"],
                                        position=contact["position"], updated_at=now,
                                        updated_by=identity.user_id))
            store.replace_identifiers(session, target.id,
                                      identifiers_of(target.card, target.contacts))

        if created:
            for chunk in _chunks(created):
                session.execute(sa.insert(ownership_history), [
                    {"client_id": t.id, "owner_id": t.card["owner_id"],
                     "department_id": t.card["department_id"], "since": now,
                     "reason": "import", "changed_by": identity.user_id} for t in chunk])
        audits = [{"client_id": t.id, "fields": [f for f in CARD_FIELDS if t.card.get(f)],
                   "details": {"import_id": str(self.import_id), "result": "created",
                               "rows": t.lines, "contacts": len(t.contacts)}} for t in created]
        audits += [{"client_id": t.id, "fields": sorted(t.changed),
                    "details": {"import_id": str(self.import_id), "result": "merged",
                                "rows": t.lines}} for t in updated]
        for chunk in _chunks(audits):
            session.execute(sa.insert(audit_log), [
                {"at": now, "user_id": identity.user_id, "role": identity.role,
                 "action": "import", **audit} for audit in chunk])
        store.audit(session, identity, "import", now, details={
            "import_id": str(self.import_id), "filename": self.filename, "summary": True,
            "totals": totals, "owner_id": _str(self.default_owner[0]),
            "department_id": _str(self.default_owner[1])})

        if len(created) + len(updated) >= ANALYZE_AFTER:
            session.execute(sa.text("ANALYZE clients, contacts, identifiers"))

        self.service.outbox.emit_many(session, [
            ("client_created", {**snapshot(target.card, identity.user_id),
                                "source": target.card["source"]}) for target in created
        ] + [
            ("client_updated", {**snapshot(target.card, identity.user_id),
                                "changed_fields": sorted(target.changed)}) for target in updated
        ])

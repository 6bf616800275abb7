"""Import of clients and contacts from the managers' Excel and CSV sheets: the pure part.

Reading a file (``.xlsx`` with openpyxl; ``.csv`` in UTF-8, UTF-8 with BOM or Windows-1251, ``;``
or ``,`` or tab as the delimiter), mapping its columns to card fields, normalising each row with the
same rules as a card typed by hand (``card.normalise_client`` / ``normalise_contact``), finding the
rows of one file that describe the same counterparty, and planning what a duplicate row adds to the
client it merges into. No database, no framework: the service runs the plan.

A file that cannot be read as a whole (broken, empty, too big, a mapping naming columns the file
does not have) raises ``ValidationFailed``; a bad *row* is only marked with its errors, so the rest
of the file can still be imported.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
import uuid
import zipfile
from dataclasses import dataclass, field

from crm_platform.errors import ValidationFailed

from .card import identifiers_of, normalise_client, normalise_contact
from .normalize import name_key

MAX_ROWS = 20_000
MAX_BYTES = 10 * 1024 * 1024

# Import field -> whether a cell may hold several values (``,``, ``;`` or a line break between).
FIELDS = {
    "short_name": False, "full_name": False, "inn": False, "kpp": False, "ogrn": False,
    "region": False, "phones": True, "emails": True, "website": False, "industry": False,
    "segment": False, "status": False, "source": False, "address": False,
    "contact_name": False, "contact_position": False, "contact_phones": True,
    "contact_emails": True, "owner_id": False,
}
CLIENT_FIELDS = ("short_name", "full_name", "inn", "kpp", "ogrn", "region", "phones", "emails",
                 "website", "industry", "segment", "status", "source", "address")
CONTACT_FIELDS = {"contact_name": "full_name", "contact_position": "position",
                  "contact_phones": "phones", "contact_emails": "emails"}
# Card and contact error keys (the first part of ``phones.0``) -> the import field they came from.
CLIENT_ERROR_FIELDS = {"addresses": "address", "legal_form": "short_name", "name_key": "short_name"}
CONTACT_ERROR_FIELDS = {v: k for k, v in CONTACT_FIELDS.items()}

# Words people write in a status column -> the status (checked in this order: "неактивный" is
# not "активный").
STATUS_WORDS = (
    ("potential", "potential"), ("active", "active"), ("dormant", "dormant"), ("lost", "lost"),
    ("потенц", "potential"), ("нов", "potential"), ("лид", "potential"),
    ("неактив", "dormant"), ("спящ", "dormant"), ("спит", "dormant"), ("дремл", "dormant"),
    ("актив", "active"), ("действ", "active"), ("текущ", "active"), ("работа", "active"),
    ("потер", "lost"), ("ушел", "lost"), ("ушёл", "lost"), ("отказ", "lost"),
)
STATUS_HELP = ("potential, active, dormant, lost (или потенциальный, активный, спящий, "
               "потерян)")

SPLIT = re.compile(r"[,;\n\r]+")
# "8 343 123-45-67 доб. 101": the extension is not part of the client's phone.
EXTENSION_SUFFIX = re.compile(
    r"\s*(?:доб(?:авочный)?|вн(?:утр(?:енний)?)?|ext)\.?\s*:?\s*\d{1,6}\s*$", re.IGNORECASE)
DELIMITERS = (";", ",", "\t")
ENCODINGS = ("utf-8-sig", "cp1251")

OLE2_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls


def invalid_file(reason: str) -> ValidationFailed:
    return ValidationFailed(f"Файл не удалось прочитать: {reason}", fields={"file": [reason]})


# -- reading ------------------------------------------------------------------------------------

@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[int, list[str]]]  # (row number as the user sees it in the file, cell texts)


def decode_file(file_base64: str) -> bytes:
    """The file from its base64 text (size-checked before and after decoding)."""
    if not isinstance(file_base64, str) or not file_base64.strip():
        raise ValidationFailed("Нет файла", fields={"file_base64": ["пусто"]})
    if len(file_base64) > (MAX_BYTES * 4) // 3 + 8:
        raise too_big()
    try:
        data = base64.b64decode("".join(file_base64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("Файл передан не в base64",
                               fields={"file_base64": ["не base64"]}) from None
    if len(data) > MAX_BYTES:
        raise too_big()
    if not data:
        raise invalid_file("файл пуст")
    return data


def too_big() -> ValidationFailed:
    return ValidationFailed(f"Файл больше {MAX_BYTES // (1024 * 1024)} МБ: разбейте его на части",
                            fields={"file": [f"не больше {MAX_BYTES} байт"]})


def read_table(data: bytes, filename: str) -> Table:
    """The first sheet of an ``.xlsx`` or a ``.csv`` file as a header and rows of text. The header
    is the first non-empty row; entirely empty rows are dropped."""
    if len(data) > MAX_BYTES:
        raise too_big()
    name = (filename or "").lower()
    if data.startswith(OLE2_MAGIC) or name.endswith(".xls"):
        raise invalid_file("старый формат .xls (или книга с паролем) не поддерживается — "
                           "сохраните файл как .xlsx без пароля или как CSV")
    if name.endswith((".xlsx", ".xlsm")) or (data.startswith(b"PK") and not name.endswith(
            (".csv", ".txt"))):
        rows = _xlsx_rows(data)
    elif name.endswith((".csv", ".txt")) or not name.rpartition(".")[1]:
        rows = _csv_rows(data)
    else:
        raise invalid_file(f"нужен файл .xlsx или .csv, а не «{filename}»")
    return _table(rows)


def _table(rows) -> Table:
    headers = None
    body: list[tuple[int, list[str]]] = []
    for number, cells in rows:
        if not any(cells):
            continue
        if headers is None:
            headers = cells
            continue
        body.append((number, cells))
        if len(body) > MAX_ROWS:
            raise ValidationFailed(
                f"В файле больше {MAX_ROWS} строк: разбейте его на части",
                fields={"file": [f"не больше {MAX_ROWS} строк с данными"]})
    if headers is None:
        raise invalid_file("в файле нет ни заголовка, ни строк")
    if not body:
        raise ValidationFailed("В файле нет строк с данными, только заголовок",
                               fields={"file": ["нет строк с данными"]})
    return Table(headers=headers, rows=body)


def cell_text(value) -> str:
    """A cell as text: Excel keeps INNs and phones typed as numbers as floats (7707083893.0)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).strip()


def _xlsx_rows(data: bytes):
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException) as exc:
        raise invalid_file(f"это не книга Excel .xlsx ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - whatever a broken book makes openpyxl raise
        raise invalid_file(f"книга Excel повреждена ({type(exc).__name__}: {exc})") from None
    try:
        if not book.worksheets:
            raise invalid_file("в книге нет листов")
        sheet = book.worksheets[0]
        # Some programs write a wrong sheet size; read every row there is instead.
        sheet.reset_dimensions()
        rows, filled = [], 0
        try:
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                cells = [cell_text(v) for v in values]
                if any(cells):
                    rows.append((number, cells))
                    filled += 1
                    if filled > MAX_ROWS + 1:  # the header and one row too many: enough to refuse
                        break
        except Exception as exc:  # noqa: BLE001 - a broken sheet (XML, zip member, ...)
            raise invalid_file(f"книга Excel повреждена ({type(exc).__name__}: {exc})") from None
        return rows
    finally:
        book.close()


def _decode(data: bytes) -> str:
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise invalid_file("кодировка не UTF-8 и не Windows-1251")


def sniff_delimiter(text: str) -> str:
    """``;`` (Russian Excel), ``,`` or tab: the one that splits the header into most columns."""
    first = next(iter(text.splitlines()), "")
    best, best_count = DELIMITERS[0], 0
    for delimiter in DELIMITERS:
        try:
            count = len(next(csv.reader([first], delimiter=delimiter), []))
        except csv.Error:
            continue
        if count > best_count:
            best, best_count = delimiter, count
    return best


def _csv_rows(data: bytes):
    text = _decode(data)
    if "\x00" in text:
        raise invalid_file("это не текстовый CSV (в нём нулевые байты)")
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, filled = [], 0
    line = 1  # where the record starts: a quoted cell may span several lines
    try:
        for cells in reader:
            cells = [c.strip() for c in cells]
            if any(cells):
                rows.append((line, cells))
                filled += 1
                if filled > MAX_ROWS + 1:
                    break
            line = reader.line_num + 1
    except csv.Error as exc:
        raise invalid_file(f"CSV не разбирается в строке {reader.line_num}: {exc}") from None
    return rows


# -- mapping ------------------------------------------------------------------------------------

def header_key(text) -> str:
    return " ".join(str(text or "").split()).casefold()


@dataclass
class ImportRow:
    """One data row of the file, and what became of it before the database is asked."""

    line: int
    values: dict[str, str]                      # import field -> the cell text(s)
    card: dict | None = None                    # normalised client card (None: invalid row)
    contacts: list[dict] = field(default_factory=list)
    owner: str | None = None                    # owner_id column, when mapped and filled
    errors: list[dict] = field(default_factory=list)  # {field, column, value, reasons}
    duplicate_of: int | None = None             # an earlier row of the file it repeats
    matched_by: list[dict] = field(default_factory=list)
    ambiguous: list[int] = field(default_factory=list)  # several earlier rows it repeats


@dataclass
class Mapping:
    columns: dict[str, list[int]]   # import field -> column indexes in the file
    headers: dict[str, str]         # import field -> the header as written in the file

    def column_of(self, import_field: str) -> str | None:
        return self.headers.get(import_field)


def parse_mapping(headers: list[str], mapping: dict) -> Mapping:
    """Check ``{column header: field}`` against the file's header; every problem at once."""
    if not isinstance(mapping, dict) or not mapping:
        raise ValidationFailed("Не задано сопоставление столбцов",
                               fields={"mapping": ["нужен объект {заголовок столбца: поле}"]})
    positions: dict[str, list[int]] = {}
    for index, header in enumerate(headers):
        if header:
            positions.setdefault(header_key(header), []).append(index)
    errors: dict[str, list[str]] = {}
    columns: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for header, target in mapping.items():
        key = f"mapping.{header}"
        if target in (None, ""):
            continue  # a column explicitly left out
        if target not in FIELDS:
            errors.setdefault(key, []).append(
                f"неизвестное поле «{target}»; возможные: {', '.join(FIELDS)}")
            continue
        found = positions.get(header_key(header))
        if not found:
            errors.setdefault(key, []).append("в файле нет такого столбца")
            continue
        if not FIELDS[target] and (target in columns or len(found) > 1):
            errors.setdefault(key, []).append(
                f"поле «{target}» может браться только из одного столбца")
            continue
        columns.setdefault(target, []).extend(found)
        names.setdefault(target, " ".join(str(header).split()))
    if "short_name" not in columns and not any(k.startswith("mapping.") for k in errors):
        errors["mapping"] = ["нужен столбец с названием клиента (поле short_name)"]
    if errors:
        known = [h for h in headers if h]
        raise ValidationFailed("Сопоставление столбцов не подходит к файлу",
                               fields=errors, extra={"columns": known})
    return Mapping(columns=columns, headers=names)


def map_rows(table: Table, mapping: Mapping) -> list[ImportRow]:
    """The rows with a value in at least one mapped column, as field -> text."""
    rows = []
    for line, cells in table.rows:
        values = {}
        for target, indexes in mapping.columns.items():
            parts = [cells[i] for i in indexes if i < len(cells) and cells[i]]
            if parts:
                values[target] = "\n".join(parts)
        if values:
            rows.append(ImportRow(line=line, values=values))
    if not rows:
        raise ValidationFailed("В сопоставленных столбцах нет ни одного значения",
                               fields={"file": ["нет строк с данными"]})
    return rows


# -- normalising a row --------------------------------------------------------------------------

def split_values(text: str | None) -> list[str]:
    return [part.strip() for part in SPLIT.split(text or "") if part.strip()]


def strip_extension(phone: str) -> str:
    return EXTENSION_SUFFIX.sub("", phone)


def status_of(text: str) -> str | None:
    word = text.strip().casefold()
    for prefix, status in STATUS_WORDS:
        if word.startswith(prefix):
            return status
    return None


def region_code(text: str) -> str | None:
    code = text.strip().upper().replace("_", "-")
    if re.fullmatch(r"[A-Z]{2,3}", code):
        code = f"RU-{code}"
    return code if re.fullmatch(r"RU-[A-Z]{2,3}", code) else None


def pad_lost_zero(value: str, lengths: dict[int, int]) -> str:
    """An INN or KPP of a region 01-09 typed into a number cell lost its leading zero."""
    compact = re.sub(r"\s", "", value)
    if compact.isdigit() and len(compact) in lengths:
        return compact.zfill(lengths[len(compact)])
    return value


def flatten_errors(messages, prefix: str = "") -> list[tuple[str, list[str]]]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out.extend(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix, messages)]
    if isinstance(messages, list):
        return [pair for m in messages for pair in flatten_errors(m, prefix)]
    return [(prefix, [str(messages)])]


class RowErrors:
    def __init__(self, row: ImportRow, mapping: Mapping):
        self.row = row
        self.mapping = mapping
        self.by_field: dict[str, list[str]] = {}

    def add(self, import_field: str, reason: str):
        reasons = self.by_field.setdefault(import_field, [])
        if reason not in reasons:
            reasons.append(reason)

    def entries(self) -> list[dict]:
        return [{"field": f, "column": self.mapping.column_of(f),
                 "value": self.row.values.get(f), "reasons": reasons}
                for f, reasons in self.by_field.items()]


def _collect(normalise, data: dict, placeholders: dict, field_of, errors: RowErrors):
    """Run a card normaliser; on a shape error (wrong length, missing...) set the bad fields
    aside and run it again, so that one row reports every bad value at once."""
    data = dict(data)
    for _attempt in range(4):
        try:
            return normalise(data)
        except ValidationFailed as exc:
            bad = set()
            for key, reasons in flatten_errors(exc.fields):
                top = key.split(".")[0]
                errors.add(field_of(top), "; ".join(reasons))
                bad.add(top)
            if all(k in placeholders and data.get(k) == placeholders[k] for k in bad):
                return None  # nothing left to set aside
            for key in bad:
                if key in placeholders:
                    data[key] = placeholders[key]
                else:
                    data.pop(key, None)
    return None


def _client_field(key: str) -> str:
    return CLIENT_ERROR_FIELDS.get(key, key if key in FIELDS else "short_name")


def _contact_field(key: str) -> str:
    return CONTACT_ERROR_FIELDS.get(key, "contact_name")


def normalise_row(row: ImportRow, mapping: Mapping) -> ImportRow:
    """Fill ``row.card``, ``row.contacts`` and ``row.owner``, or ``row.errors`` (and then
    ``card`` is None)."""
    errors = RowErrors(row, mapping)
    values = row.values
    data: dict = {}
    for name in CLIENT_FIELDS:
        text = values.get(name)
        if not text:
            continue
        if name == "phones":
            data["phones"] = [strip_extension(p) for p in split_values(text)]
        elif name == "emails":
            data["emails"] = split_values(text)
        elif name == "address":
            data["addresses"] = [{"kind": "legal", "text": " ".join(text.split())}]
        elif name == "status":
            status = status_of(text)
            if status is None:
                errors.add("status", f"неизвестный статус «{text}»: {STATUS_HELP}")
            else:
                data["status"] = status
        elif name == "region":
            code = region_code(text)
            if code is None:
                errors.add("region", f"«{text}» — не код региона (вида RU-SVE)")
            else:
                data["region"] = code
        elif name == "inn":
            data["inn"] = pad_lost_zero(text, {9: 10, 11: 12})
        elif name == "kpp":
            data["kpp"] = pad_lost_zero(text, {8: 9})
        else:
            data[name] = " ".join(text.split())
    if not data.get("short_name"):
        errors.add("short_name", "нет названия клиента")
        data["short_name"] = "Клиент"  # to check the other fields all the same

    card = _collect(normalise_client, data, {"short_name": "Клиент"}, _client_field, errors)

    contact_data = {}
    for name, target in CONTACT_FIELDS.items():
        text = values.get(name)
        if text:
            contact_data[target] = (
                [strip_extension(p) for p in split_values(text)] if target == "phones"
                else split_values(text) if target == "emails" else " ".join(text.split()))
    contact = None
    if contact_data:
        if not contact_data.get("full_name"):
            errors.add("contact_name", "нужно ФИО контактного лица, раз указаны его данные")
            contact_data["full_name"] = "Контакт"
        contact = _collect(normalise_contact, contact_data, {"full_name": "Контакт"},
                           _contact_field, errors)

    owner = values.get("owner_id")
    if owner:
        try:
            row.owner = str(uuid.UUID(owner.strip()))
        except ValueError:
            errors.add("owner_id", f"«{owner}» — не идентификатор сотрудника (UUID)")

    row.errors = errors.entries()
    if row.errors or card is None:
        row.card, row.contacts = None, []
    else:
        row.card = card
        row.contacts = [contact] if contact else []
    return row


# -- duplicates inside the file -----------------------------------------------------------------

def find_duplicates_in_file(rows: list[ImportRow]) -> None:
    """Mark each valid row that repeats an earlier one (same INN with a compatible KPP, phone,
    e-mail, or the same name key unless both rows have different INNs — the rules of the base's
    duplicate check) with ``duplicate_of``: it will be merged into that row's client. A row that
    repeats several different earlier clients is ``ambiguous``."""
    keys: dict[tuple[str, str], int] = {}
    inns: dict[str, list[tuple[int, str | None]]] = {}
    names: dict[str, list[tuple[int, str | None]]] = {}
    for row in rows:
        card = row.card
        if card is None:
            continue
        hits: dict[int, list[dict]] = {}

        def hit(leader: int, reason: str, value: str, _hits=hits):
            reasons = _hits.setdefault(leader, [])
            if not any(r["reason"] == reason and r["value"] == value for r in reasons):
                reasons.append({"reason": reason, "value": value})

        own_keys = [(k, v) for k, v, _ in identifiers_of(card, row.contacts)
                    if k in ("phone", "email")]
        for key in own_keys:
            if key in keys:
                hit(keys[key], key[0], key[1])
        if card.get("inn"):
            for leader, kpp in inns.get(card["inn"], []):
                if not (card.get("kpp") and kpp and card["kpp"] != kpp):
                    hit(leader, "inn", card["inn"])
        key_of_name = card.get("name_key") or name_key(card["short_name"])
        for leader, inn in names.get(key_of_name, []):
            if not (card.get("inn") and inn and card["inn"] != inn):
                hit(leader, "name", card["short_name"])

        if len(hits) > 1:
            row.ambiguous = sorted(hits)
            continue
        if hits:
            leader, reasons = next(iter(hits.items()))
            row.duplicate_of, row.matched_by = leader, reasons
        else:
            leader = row.line
        for key in own_keys:
            keys.setdefault(key, leader)
        if card.get("inn"):
            inns.setdefault(card["inn"], []).append((leader, card.get("kpp")))
        names.setdefault(key_of_name, []).append((leader, card.get("inn")))


def prepare(data: bytes, filename: str, mapping: dict) -> tuple[list[ImportRow], Mapping]:
    """Read, map, normalise and de-duplicate a file: everything that needs no database."""
    table = read_table(data, filename)
    parsed = parse_mapping(table.headers, mapping)
    rows = [normalise_row(row, parsed) for row in map_rows(table, parsed)]
    find_duplicates_in_file(rows)
    return rows, parsed


# -- merging a row into a client ----------------------------------------------------------------

FILLABLE = ("full_name", "legal_form", "inn", "kpp", "ogrn", "region", "website", "industry",
            "segment", "source")
LEGAL_DETAILS = ("full_name", "legal_form", "kpp", "ogrn")


def person_key(name: str | None) -> str:
    return " ".join((name or "").casefold().replace("ё", "е").split())


@dataclass
class MergePlan:
    changes: dict = field(default_factory=dict)          # card field -> its new value
    new_contacts: list[dict] = field(default_factory=list)
    contact_changes: list[tuple[dict, dict]] = field(default_factory=list)  # (contact, changes)
    warnings: list[str] = field(default_factory=list)
    added: dict = field(default_factory=dict)  # phones, emails, contacts (counts), fields (names)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.new_contacts or self.contact_changes)


def plan_merge(card: dict, contacts: list[dict], row_card: dict,
               row_contacts: list[dict]) -> MergePlan:
    """What a duplicate row adds to the client it repeats: phones and e-mails the client has
    nowhere yet, new contact persons (or new numbers of a known one), and the card fields the
    client has empty. Filled fields are never overwritten; a different INN is a warning."""
    plan = MergePlan()
    known_phones = set(card.get("phones") or ())
    known_emails = set(card.get("emails") or ())
    for contact in contacts:
        known_phones.update(contact.get("phones") or ())
        known_emails.update(contact.get("emails") or ())

    for kind, known in (("phones", known_phones), ("emails", known_emails)):
        fresh = [v for v in row_card.get(kind) or () if v not in known]
        if fresh:
            plan.changes[kind] = list(card.get(kind) or ()) + fresh
            known.update(fresh)

    other_inn = bool(card.get("inn") and row_card.get("inn") and card["inn"] != row_card["inn"])
    if other_inn:
        plan.warnings.append(f"ИНН в файле ({row_card['inn']}) отличается от ИНН клиента "
                             f"({card['inn']}): оставлены реквизиты клиента")
    for name in FILLABLE:
        value = row_card.get(name)
        if not value or card.get(name):
            continue
        if other_inn and name in LEGAL_DETAILS:
            continue  # details of another legal entity
        if name == "kpp" and len(plan.changes.get("inn") or card.get("inn") or "") != 10:
            continue
        plan.changes[name] = value
    have_kinds = {a.get("kind") for a in card.get("addresses") or ()}
    fresh_addresses = [a for a in row_card.get("addresses") or () if a["kind"] not in have_kinds]
    if fresh_addresses:
        plan.changes["addresses"] = list(card.get("addresses") or ()) + fresh_addresses

    for incoming in row_contacts:
        same = _same_contact(contacts + plan.new_contacts, incoming)
        phones = [p for p in incoming.get("phones") or () if p not in known_phones]
        emails = [e for e in incoming.get("emails") or () if e not in known_emails]
        known_phones.update(phones)
        known_emails.update(emails)
        if same is None:
            plan.new_contacts.append({**incoming, "phones": phones, "emails": emails})
            continue
        changes = {}
        if phones:
            changes["phones"] = phones
        if emails:
            changes["emails"] = emails
        if incoming.get("position") and not same.get("position"):
            changes["position"] = incoming["position"]
        if changes:
            if any(same is c for c in plan.new_contacts):
                for key, value in changes.items():
                    same[key] = (list(same.get(key) or ()) + value
                                 if isinstance(value, list) else value)
            else:
                plan.contact_changes.append((same, changes))

    def count(kind):
        on_card = (len(plan.changes[kind]) - len(card.get(kind) or ())
                   if kind in plan.changes else 0)
        return (on_card + sum(len(c.get(kind, ())) for _, c in plan.contact_changes)
                + sum(len(c.get(kind) or ()) for c in plan.new_contacts))

    plan.added = {"phones": count("phones"), "emails": count("emails"),
                  "contacts": len(plan.new_contacts),
                  "fields": [f for f in plan.changes if f not in ("phones", "emails")]}
    return plan


def _same_contact(contacts: list[dict], incoming: dict) -> dict | None:
    name = person_key(incoming.get("full_name"))
    ids = set(incoming.get("phones") or ()) | set(incoming.get("emails") or ())
    for contact in contacts:
        if name and person_key(contact.get("full_name")) == name:
            return contact
    for contact in contacts:
        if ids & (set(contact.get("phones") or ()) | set(contact.get("emails") or ())):
            return contact
    return None

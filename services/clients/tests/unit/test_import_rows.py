"""Import of clients from Excel and CSV: reading, column mapping, row normalisation, duplicates
inside one file and what a duplicate row adds to its client (no database)."""

import base64
import io
import zipfile

import openpyxl
import pytest

from crm_platform.errors import ValidationFailed
from services.clients.domain import importing
from services.clients.domain.importing import (
    decode_file,
    find_duplicates_in_file,
    map_rows,
    normalise_row,
    parse_mapping,
    plan_merge,
    prepare,
    read_table,
    sniff_delimiter,
)

HEADERS = ["Название", "ИНН", "КПП", "Телефоны", "E-mail", "Регион", "Статус", "Адрес",
           "Контактное лицо", "Должность", "Тел. контакта", "Почта контакта"]
MAPPING = {"Название": "short_name", "ИНН": "inn", "КПП": "kpp", "Телефоны": "phones",
           "E-mail": "emails", "Регион": "region", "Статус": "status", "Адрес": "address",
           "Контактное лицо": "contact_name", "Должность": "contact_position",
           "Тел. контакта": "contact_phones", "Почта контакта": "contact_emails"}
# Valid INNs (checksums): a Moscow bank, one of a region with a leading zero, two more.
INN_A, INN_ZERO, INN_B, INN_C = "7707083893", "0274000010", "6600000010", "6600000028"


def xlsx(rows, headers=HEADERS, title_rows=0) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for _ in range(title_rows):
        sheet.append([])
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def csv_bytes(lines, encoding="cp1251", delimiter=";") -> bytes:
    return "\r\n".join(delimiter.join(cells) for cells in lines).encode(encoding)


def by_line(rows):
    return {row.line: row for row in rows}


# -- reading ------------------------------------------------------------------------------------

def test_an_xlsx_sheet_is_read_with_numbers_as_excel_stores_them():
    data = xlsx([
        ["ООО «Стройметалл»", 7707083893, 770701001, "8 (343) 123-45-67, 8 916 123 45 67",
         "Sales@StroyMetall.RU", "sve", "активный", "г. Москва, ул. Ленина, 1",
         "Петров Пётр", "снабженец", "+7 916 555-11-22 доб. 12", "petrov@stroymetall.ru"],
        [None] * 12,  # an empty row in the middle is skipped, numbering stays the sheet's
        ["Башкирский профиль", 274000010, None, 89161234500, None, "RU-BA", None, None,
         None, None, None, None],
    ], title_rows=2)
    rows, mapping = prepare(data, "клиенты.xlsx", MAPPING)

    first, second = rows
    assert (first.line, second.line) == (4, 6)  # header on row 3 after two blank rows
    assert first.errors == [] and second.errors == []
    card = first.card
    assert card["short_name"] == "ООО «Стройметалл»" and card["legal_form"] == "ООО"
    assert card["inn"] == INN_A and card["kpp"] == "770701001"
    assert card["phones"] == ["+73431234567", "+79161234567"]
    assert card["emails"] == ["sales@stroymetall.ru"]
    assert card["region"] == "RU-SVE" and card["status"] == "active"
    assert card["addresses"] == [{"kind": "legal", "text": "г. Москва, ул. Ленина, 1"}]
    assert first.contacts == [{"full_name": "Петров Пётр", "position": "снабженец",
                               "phones": ["+79165551122"], "emails": ["petrov@stroymetall.ru"],
                               "messengers": {}, "notes": None}]
    # A number cell lost the INN's leading zero; the status defaults to potential.
    assert second.card["inn"] == INN_ZERO and second.card["status"] == "potential"
    assert second.card["phones"] == ["+79161234500"] and second.contacts == []
    assert mapping.column_of("inn") == "ИНН"


def test_a_cp1251_csv_with_semicolons_and_a_multiline_cell_is_read():
    data = csv_bytes([
        ["Название", "ИНН", "Телефоны", "Контактное лицо"],
        ["ООО Ромашка", INN_B, '"8 343 111-22-33\r\n8 343 111-22-34"', "Иванова Ёлка"],
        ["Стройметалл, ООО", INN_A, "+7 343 123 45 67", ""],
    ])
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    rows, _ = prepare(data, "base.csv", {"Название": "short_name", "ИНН": "inn",
                                         "Телефоны": "phones", "Контактное лицо": "contact_name"})
    assert [row.line for row in rows] == [2, 4]  # the quoted cell spans two lines
    assert rows[0].card["phones"] == ["+73431112233", "+73431112234"]
    assert rows[0].contacts[0]["full_name"] == "Иванова Ёлка"
    assert rows[1].card["name_key"] == "стройметалл"


@pytest.mark.parametrize("encoding, delimiter", [("utf-8-sig", ","), ("utf-8", ";"),
                                                 ("cp1251", ","), ("utf-8", "\t")])
def test_csv_encodings_and_delimiters_are_detected(encoding, delimiter):
    data = csv_bytes([["Клиент", "Почта"], ["ООО Ёжик", "info@ezhik.ru"]], encoding, delimiter)
    table = read_table(data, "x.csv")
    assert table.headers == ["Клиент", "Почта"]  # no BOM left in the first header
    assert table.rows == [(2, ["ООО Ёжик", "info@ezhik.ru"])]


def test_the_delimiter_is_the_one_splitting_the_header_most():
    assert sniff_delimiter("a;b;c\n1,5;2;3") == ";"
    assert sniff_delimiter('"a, b",c,d\n') == ","


@pytest.mark.parametrize("data, filename, reason", [
    (b"PK\x03\x04 definitely not a workbook", "clients.xlsx", "не книга Excel"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "clients.xls", ".xls"),
    (b"%PDF-1.4", "clients.pdf", "нужен файл .xlsx или .csv"),
    (b"\r\n\r\n;;\r\n", "clients.csv", "нет ни заголовка"),
    (b"name\x00;inn\r\n", "clients.csv", "нулевые байты"),
])
def test_an_unreadable_file_is_refused_as_a_whole(data, filename, reason):
    with pytest.raises(ValidationFailed) as caught:
        read_table(data, filename)
    assert reason in caught.value.detail and "file" in caught.value.fields


def test_a_workbook_with_a_broken_sheet_is_refused():
    original = zipfile.ZipFile(io.BytesIO(xlsx([["Ромашка"] + [None] * 11])))
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as target:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]  # cut off mid-XML
            target.writestr(item, data)
    with pytest.raises(ValidationFailed) as caught:
        read_table(broken.getvalue(), "x.xlsx")
    assert "повреждена" in caught.value.detail


def test_a_file_with_only_a_header_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        read_table(xlsx([]), "x.xlsx")
    assert caught.value.fields == {"file": ["нет строк с данными"]}


def test_a_file_with_too_many_rows_is_refused(monkeypatch):
    monkeypatch.setattr(importing, "MAX_ROWS", 3)
    read_table(csv_bytes([["Название"]] + [[f"Клиент {n}"] for n in range(3)]), "x.csv")
    with pytest.raises(ValidationFailed) as caught:
        read_table(csv_bytes([["Название"]] + [[f"Клиент {n}"] for n in range(4)]), "x.csv")
    assert "больше 3 строк" in caught.value.detail
    with pytest.raises(ValidationFailed):
        read_table(xlsx([[f"Клиент {n}"] for n in range(4)], headers=["Название"]), "x.xlsx")


def test_a_file_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(importing, "MAX_BYTES", 100)
    payload = b"x" * 101
    with pytest.raises(ValidationFailed) as caught:
        decode_file(base64.b64encode(payload).decode())
    assert "file" in caught.value.fields
    with pytest.raises(ValidationFailed):
        read_table(payload, "x.csv")


def test_base64_is_checked():
    assert decode_file(base64.b64encode(b"abc").decode()) == b"abc"
    with pytest.raises(ValidationFailed) as caught:
        decode_file("not base64!")
    assert "file_base64" in caught.value.fields
    with pytest.raises(ValidationFailed):
        decode_file("")


# -- mapping ------------------------------------------------------------------------------------

def test_a_mapping_is_matched_to_headers_ignoring_case_and_spaces():
    mapping = parse_mapping(["  Название  клиента", "ТЕЛЕФОН", "Телефон 2", "Заметки"],
                            {"название клиента": "short_name", "телефон": "phones",
                             "Телефон 2": "phones", "Заметки": None})
    assert mapping.columns == {"short_name": [0], "phones": [1, 2]}
    rows = map_rows(importing.Table(["Название клиента", "Телефон", "Телефон 2", "Заметки"],
                                    [(2, ["Ромашка", "8 343 111 22 33", "8 343 111 22 34", "x"]),
                                     (3, ["", "", "", "только заметка"])]), mapping)
    assert len(rows) == 1 and rows[0].values == {"short_name": "Ромашка",
                                                 "phones": "8 343 111 22 33\n8 343 111 22 34"}


def test_every_mapping_problem_is_reported_at_once():
    with pytest.raises(ValidationFailed) as caught:
        parse_mapping(["Название", "ИНН", "ИНН2"],
                      {"Название": "short_name", "Телефон": "phones", "ИНН": "inn",
                       "ИНН2": "inn", "Сайт": "homepage"})
    assert set(caught.value.fields) == {"mapping.Телефон", "mapping.ИНН2", "mapping.Сайт"}
    assert caught.value.extra["columns"] == ["Название", "ИНН", "ИНН2"]
    with pytest.raises(ValidationFailed) as caught:
        parse_mapping(["Название", "ИНН"], {"ИНН": "inn"})
    assert "short_name" in caught.value.fields["mapping"][0]
    with pytest.raises(ValidationFailed):
        parse_mapping(["Название"], {})


def test_unknown_columns_refuse_the_whole_file():
    with pytest.raises(ValidationFailed) as caught:
        prepare(xlsx([["Ромашка"] + [None] * 11]), "x.xlsx", {"Наименование": "short_name"})
    assert "mapping.Наименование" in caught.value.fields


# -- normalising rows ---------------------------------------------------------------------------

def row_of(values: dict, mapping=None):
    headers = list(values)
    parsed = parse_mapping(headers, mapping or {h: h for h in headers})
    rows = map_rows(importing.Table(headers, [(7, list(values.values()))]), parsed)
    return normalise_row(rows[0], parsed)


def test_a_bad_row_reports_every_bad_field_with_its_column_and_value():
    row = row_of({"Название": "ООО", "ИНН": "7707083894", "Телефоны": "101; 8 916 123 45 67",
                  "Статус": "в раздумьях", "Регион": "Урал", "Почта": "нет почты",
                  "Контакт тел": "8 916 000 00 01"},
                 {"Название": "short_name", "ИНН": "inn", "Телефоны": "phones",
                  "Статус": "status", "Регион": "region", "Почта": "emails",
                  "Контакт тел": "contact_phones"})
    assert row.card is None
    errors = {e["field"]: e for e in row.errors}
    assert set(errors) == {"short_name", "inn", "phones", "status", "region", "emails",
                           "contact_name"}
    assert errors["inn"] == {"field": "inn", "column": "ИНН", "value": "7707083894",
                             "reasons": ["неверная контрольная сумма ИНН"]}
    assert errors["phones"]["reasons"] == ["101 — внутренний номер АТС, а не телефон клиента"]
    assert "в раздумьях" in errors["status"]["reasons"][0]
    assert errors["contact_name"]["column"] is None


def test_shape_errors_do_not_hide_the_others():
    row = row_of({"Название": "Х" * 301, "ИНН": "123", "Адрес": "М"},
                 {"Название": "short_name", "ИНН": "inn", "Адрес": "address"})
    assert {e["field"] for e in row.errors} == {"short_name", "inn", "address"}


@pytest.mark.parametrize("word, status", [("Потенциальный", "potential"), ("active", "active"),
                                          ("Неактивный", "dormant"), ("спящий", "dormant"),
                                          ("ПОТЕРЯН", "lost"), ("действующий", "active")])
def test_status_words_people_write(word, status):
    row = row_of({"Название": "Ромашка", "Статус": word},
                 {"Название": "short_name", "Статус": "status"})
    assert row.card["status"] == status


def test_an_owner_column_holds_a_user_id():
    good = row_of({"Название": "Ромашка", "Менеджер": "2f1f8f0e-6d5c-4d43-9d8e-3c2b1a0f9e8d"},
                  {"Название": "short_name", "Менеджер": "owner_id"})
    assert good.owner == "2f1f8f0e-6d5c-4d43-9d8e-3c2b1a0f9e8d"
    bad = row_of({"Название": "Ромашка", "Менеджер": "Иванов"},
                 {"Название": "short_name", "Менеджер": "owner_id"})
    assert bad.card is None and bad.errors[0]["field"] == "owner_id"


# -- duplicates inside the file -----------------------------------------------------------------

def test_rows_of_one_counterparty_are_found_inside_the_file():
    data = csv_bytes([
        ["Название", "ИНН", "КПП", "Телефоны", "Контакт", "Тел. контакта"],
        ["ООО «Стройметалл»", INN_A, "", "8 343 123 45 67", "Петров", ""],      # 2
        ["Стройметалл, ООО", "", "", "", "Сидоров", "8 916 555 11 33"],          # 3 name
        ["ЗАО Другое имя", "", "", "", "Козлов", "+7 (343) 123-45-67"],          # 4 phone
        ["АО Филиал", INN_B, "660001001", "", "", ""],                           # 5
        ["АО Филиал", INN_B, "660002001", "", "", ""],                           # 6 branch + name
        ["АО Свой ИНН", INN_C, "", "", "", ""],                                  # 7
        ["Свой ИНН", INN_A, "", "", "", ""],                                     # 8 INN of 2
        ["Иное", "", "", "8 916 555 11 33", "", ""],                             # 9 phone of 3
        ["Свой ИНН", "", "", "8 343 999 88 77", "", ""],                         # 10 name: 7, 8
        ["Ромашка", "", "", "8 343 123 45 67, 8 343 222 33 44", "", ""],         # 11
        ["АО Отдельно", "", "", "8 343 222 33 44", "", ""],                      # 12 phone of 11
        ["Разное", "", "", "8 343 222 33 44, +7 343 123-45-67", "", ""],         # 13 -> 2 only
    ])
    mapping = dict(zip(["Название", "ИНН", "КПП", "Телефоны", "Контакт", "Тел. контакта"],
                       ["short_name", "inn", "kpp", "phones", "contact_name", "contact_phones"],
                       strict=True))
    rows = by_line(prepare(data, "x.csv", mapping)[0])
    assert rows[2].duplicate_of is None
    assert rows[3].duplicate_of == 2 and rows[3].matched_by == [
        {"reason": "name", "value": "Стройметалл, ООО"}]
    assert rows[4].duplicate_of == 2 and rows[4].matched_by[0]["reason"] == "phone"
    assert rows[5].duplicate_of is None
    # Another branch, but the same name: the base's check treats it as the same client too.
    assert rows[6].duplicate_of == 5
    assert rows[7].duplicate_of is None
    assert rows[8].duplicate_of == 2 and rows[8].matched_by == [{"reason": "inn",
                                                                 "value": INN_A}]
    assert rows[9].duplicate_of == 2  # the phone of row 3's contact, which merged into row 2
    assert rows[10].duplicate_of is None and rows[10].ambiguous == [2, 7]
    assert rows[11].duplicate_of == 2  # a phone row 2 has
    assert rows[12].duplicate_of == 2  # the second phone of row 11, which is row 2's client
    assert rows[13].duplicate_of == 2


def test_a_same_name_with_another_inn_is_another_client():
    data = csv_bytes([["Название", "ИНН"], ["ООО Ромашка", INN_B], ["Ромашка", INN_C],
                      ["РОМАШКА", ""]])
    rows = by_line(prepare(data, "x.csv", {"Название": "short_name", "ИНН": "inn"})[0])
    assert rows[3].duplicate_of is None
    assert rows[4].ambiguous == [2, 3]


def test_invalid_rows_take_no_part_in_the_duplicate_search():
    data = csv_bytes([["Название", "ИНН"], ["ООО Ромашка", "7707083894"], ["Ромашка", ""]])
    rows = prepare(data, "x.csv", {"Название": "short_name", "ИНН": "inn"})[0]
    assert rows[0].card is None and rows[1].duplicate_of is None


def test_duplicates_are_marked_on_prepared_rows_only():
    rows = [importing.ImportRow(line=2, values={}), importing.ImportRow(line=3, values={})]
    find_duplicates_in_file(rows)
    assert all(r.duplicate_of is None and not r.ambiguous for r in rows)


# -- merging a row into its client --------------------------------------------------------------

def test_a_repeat_adds_what_the_client_lacks_and_overwrites_nothing():
    card = {"short_name": "ООО Ромашка", "inn": None, "kpp": None, "region": "RU-SVE",
            "phones": ["+73431112233"], "emails": [], "addresses": [], "industry": None}
    contacts = [{"id": 1, "full_name": "Петров Пётр", "position": None,
                 "phones": ["+79160000001"], "emails": []}]
    row_card = {"short_name": "Ромашка", "inn": INN_B, "kpp": "660001001", "region": "RU-TA",
                "phones": ["+73431112233", "+73431112299", "+79160000001"],
                "emails": ["info@romashka.ru"],
                "addresses": [{"kind": "legal", "text": "Екатеринбург"}], "industry": "кровля"}
    row_contacts = [{"full_name": "петров  пётр", "position": "директор",
                     "phones": ["+79160000001", "+79160000002"], "emails": []},
                    {"full_name": "Сидорова Анна", "position": None, "phones": [],
                     "emails": ["anna@romashka.ru", "info@romashka.ru"]}]
    plan = plan_merge(card, contacts, row_card, row_contacts)
    assert plan.changes == {"phones": ["+73431112233", "+73431112299"],
                            "emails": ["info@romashka.ru"], "inn": INN_B, "kpp": "660001001",
                            "industry": "кровля",
                            "addresses": [{"kind": "legal", "text": "Екатеринбург"}]}
    assert plan.contact_changes == [(contacts[0], {"phones": ["+79160000002"],
                                                   "position": "директор"})]
    assert plan.new_contacts == [{"full_name": "Сидорова Анна", "position": None, "phones": [],
                                  "emails": ["anna@romashka.ru"]}]
    assert plan.added == {"phones": 2, "emails": 2, "contacts": 1,
                          "fields": ["inn", "kpp", "industry", "addresses"]}
    assert plan.warnings == []


def test_a_different_inn_is_kept_and_warned_about():
    plan = plan_merge({"short_name": "Ромашка", "inn": INN_B, "phones": []}, [],
                      {"short_name": "Ромашка", "inn": INN_C, "kpp": "660001001",
                       "phones": []}, [])
    assert plan.empty and plan.changes == {}
    assert INN_C in plan.warnings[0]


def test_the_same_row_twice_adds_nothing():
    card = {"short_name": "Ромашка", "phones": ["+73431112233"], "emails": []}
    plan = plan_merge(card, [], {"short_name": "Ромашка", "phones": ["+73431112233"]}, [])
    assert plan.empty and plan.added == {"phones": 0, "emails": 0, "contacts": 0, "fields": []}

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clients.domain.normalize import (
    ABBREVIATIONS,
    FieldError,
    is_extension,
    name_key,
    normalise_email,
    normalise_inn,
    normalise_kpp,
    normalise_ogrn,
    normalise_phone,
    normalise_website,
    split_legal_form,
)


@pytest.mark.parametrize("raw, e164", [
    ("8 916 123-45-67", "+79161234567"),
    ("+7 (916) 123-45-67", "+79161234567"),
    ("9161234567", "+79161234567"),
    ("8 (343) 123-45-67", "+73431234567"),
    ("+7 343 123 45 67", "+73431234567"),
    ("8-800-555-35-35", "+78005553535"),
    ("810 49 30 12345678", "+493012345678"),  # 810: the Russian international prefix
    ("+49 30 12345678", "+493012345678"),
])
def test_phones_are_normalised_to_e164_by_russian_habits(raw, e164):
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize("raw", ["101", "2345", "12-34-56"])
def test_a_short_number_is_a_pbx_extension_not_a_client_phone(raw):
    assert is_extension(raw)
    with pytest.raises(FieldError, match="внутренний номер АТС"):
        normalise_phone(raw)


@pytest.mark.parametrize("raw", ["не телефон", "+7 916 12", "8 000 000 00 00 00 0"])
def test_garbage_is_not_a_phone(raw):
    with pytest.raises(FieldError):
        normalise_phone(raw)


def test_inn_checksums_are_real():
    assert normalise_inn("7707083893") == "7707083893"          # Сбербанк, 10 digits
    assert normalise_inn(" 7707 083 893 ") == "7707083893"
    assert normalise_inn("500100732259") == "500100732259"      # a sole trader, 12 digits
    with pytest.raises(FieldError, match="контрольная сумма"):
        normalise_inn("7707083894")
    with pytest.raises(FieldError, match="10 .* или 12"):
        normalise_inn("12345")
    assert normalise_inn("") is None and normalise_inn(None) is None


def test_ogrn_checksums_are_real():
    assert normalise_ogrn("1027700132195") == "1027700132195"
    with pytest.raises(FieldError, match="контрольная сумма"):
        normalise_ogrn("1027700132196")
    with pytest.raises(FieldError):
        normalise_ogrn("123")


@pytest.mark.parametrize("raw, kpp", [("770701001", "770701001"), ("7707 01 001", "770701001"),
                                      ("7707AB001", "7707AB001"), ("7707ab001", "7707AB001")])
def test_kpp_by_format(raw, kpp):
    assert normalise_kpp(raw) == kpp


@pytest.mark.parametrize("raw", ["77070100", "7707010011", "77А701001", "abcdefghi"])
def test_bad_kpp(raw):
    with pytest.raises(FieldError):
        normalise_kpp(raw)


def test_emails_are_lower_cased_and_checked():
    assert normalise_email("  Sales@StroyMetall.RU ") == "sales@stroymetall.ru"
    with pytest.raises(FieldError):
        normalise_email("sales at stroymetall.ru")


def test_websites_lose_scheme_and_slash():
    assert normalise_website("HTTPS://Roof.Example.RU/") == "roof.example.ru"


@pytest.mark.parametrize("name", [
    "ООО «Стройметалл»", "Стройметалл, ООО", "СТРОЙМЕТАЛЛ", "ооо \"стройметалл\"",
    "Общество с ограниченной ответственностью «Стройметалл»", "  Стройметалл  ",
])
def test_one_company_under_many_spellings_has_one_key(name):
    assert name_key(name) == "стройметалл"


def test_word_order_and_yo_do_not_matter():
    assert name_key("АО «Урал Металл Профиль»") == name_key("Профиль Металл Урал")
    assert name_key("Фёдоров и партнёры") == name_key("федоров и партнеры")


@pytest.mark.parametrize("name, form, bare", [
    ("ИП Иванов Иван Иванович", "ИП", "Иванов Иван Иванович"),
    ("ПАО «Северсталь»", "ПАО", "Северсталь"),
    ("Непубличное акционерное общество «Профиль»", "АО", "Профиль"),
    ("Публичное акционерное общество «Профиль»", "ПАО", "Профиль"),
    ("Кровля-Сервис", None, "Кровля-Сервис"),
])
def test_legal_form_is_recognised(name, form, bare):
    assert split_legal_form(name) == (form, bare)


LEGAL = st.sampled_from(["ООО", "АО", "ПАО", "ЗАО", "ИП"])
# Words of names; a word that is itself a legal form (АНО, ООО) is a form, not a name.
WORD = st.text(alphabet="абвгдежзиклмнопрстуфхцчшэюяАБВГДЕЖЗИКЛМНОПРСТУФХЦЧШЭЮЯ", min_size=3,
               max_size=10).filter(lambda word: word.upper() not in ABBREVIATIONS)


@given(LEGAL, st.lists(WORD, min_size=1, max_size=3),
       st.sampled_from(["{form} «{name}»", "{name}, {form}", "{form} \"{name}\"", "{NAME}"]))
def test_any_spelling_of_a_generated_name_has_the_key_of_its_bare_name(form, words, pattern):
    name = " ".join(words)
    spelled = pattern.format(form=form, name=name, NAME=name.upper())
    assert name_key(spelled) == name_key(name)


@given(st.lists(WORD, min_size=2, max_size=4))
def test_the_key_ignores_word_order(words):
    assert name_key(" ".join(words)) == name_key(" ".join(reversed(words)))

import uuid

import pytest

from crm_platform.errors import ValidationFailed
from services.clients.domain.card import identifiers_of, normalise_client, normalise_contact
from services.clients.domain.matching import rank


def test_a_card_reports_every_bad_field_at_once():
    with pytest.raises(ValidationFailed) as caught:
        normalise_client({"short_name": "ООО Ромашка", "inn": "7707083894", "kpp": "12",
                          "phones": ["101", "+7 916 123-45-67"], "emails": ["nope"],
                          "status": "sleeping"})
    assert "status" in caught.value.fields  # shape errors come first, alone
    with pytest.raises(ValidationFailed) as caught:
        normalise_client({"short_name": "ООО Ромашка", "inn": "7707083894", "kpp": "12",
                          "phones": ["101", "+7 916 123-45-67"], "emails": ["nope"]})
    assert set(caught.value.fields) == {"inn", "kpp", "phones.0", "emails.0"}


def test_a_card_is_normalised():
    card = normalise_client({"short_name": "ООО «Стройметалл»", "inn": "7707083893",
                             "kpp": "770701001", "phones": ["8 916 123-45-67", "+79161234567"],
                             "emails": ["A@B.RU"], "website": "http://x.ru/"})
    assert card["legal_form"] == "ООО"
    assert card["name_key"] == "стройметалл"
    assert card["phones"] == ["+79161234567"]  # one number written twice
    assert card["emails"] == ["a@b.ru"] and card["website"] == "x.ru"


def test_a_sole_trader_has_no_kpp():
    with pytest.raises(ValidationFailed) as caught:
        normalise_client({"short_name": "ИП Иванов", "inn": "500100732259", "kpp": "500101001"})
    assert list(caught.value.fields) == ["kpp"]


def test_a_legal_form_alone_is_not_a_name():
    with pytest.raises(ValidationFailed) as caught:
        normalise_client({"short_name": "ООО"})
    assert list(caught.value.fields) == ["short_name"]


def test_partial_cards_check_only_what_is_given():
    assert normalise_client({"phones": ["89161234567"]}, partial=True) == {
        "phones": ["+79161234567"]}


def test_contacts_are_normalised():
    contact = normalise_contact({"full_name": "  Петров   Пётр ", "phones": ["8 916 1234567"],
                                 "emails": ["P@X.RU"]})
    assert contact["full_name"] == "Петров Пётр"
    assert contact["phones"] == ["+79161234567"] and contact["emails"] == ["p@x.ru"]


def test_identifiers_cover_the_card_and_its_contacts():
    contact_id = uuid.uuid4()
    keys = identifiers_of({"inn": "7707083893", "kpp": "770701001", "phones": ["+73431234567"],
                           "emails": ["a@b.ru"]},
                          [{"id": contact_id, "phones": ["+79161234567"], "emails": []}])
    assert keys == [("inn", "7707083893", None), ("inn_kpp", "7707083893/770701001", None),
                    ("phone", "+73431234567", None), ("email", "a@b.ru", None),
                    ("phone", "+79161234567", contact_id)]


def row(**fields):
    return {"id": fields.pop("id", uuid.uuid4()), "short_name": "X", "inn": None, "kpp": None,
            **fields}


def test_exact_keys_block_and_rank_above_names():
    by_inn, by_phone, by_name = row(inn="7707083893"), row(), row(short_name="Стройметалл")
    ranked = rank({"inn": "7707083893"},
                  [("inn", "7707083893", by_inn), ("phone", "+79161234567", by_phone)],
                  [(by_name, 1.0)])
    assert [(m.client_id, m.blocking) for m, _ in ranked] == [
        (str(by_inn["id"]), True), (str(by_phone["id"]), True), (str(by_name["id"]), True)]
    assert ranked[0][0].score > ranked[1][0].score > ranked[2][0].score


def test_another_branch_of_the_same_company_is_shown_but_does_not_block():
    branch = row(inn="7707083893", kpp="770701001")
    [(match, _)] = rank({"inn": "7707083893", "kpp": "667101001"},
                        [("inn", "7707083893", branch)], [])
    assert not match.blocking
    assert match.reasons == [{"reason": "inn_other_branch", "value": "7707083893"}]


def test_a_similar_name_with_another_inn_does_not_block():
    other = row(inn="500100732259", short_name="Стройметалл")
    [(match, _)] = rank({"inn": "7707083893"}, [], [(other, 0.95)])
    assert not match.blocking and match.reasons[0]["reason"] == "similar_name_other_inn"


def test_names_block_only_when_nearly_equal():
    near, far, unrelated = row(), row(), row()
    ranked = rank({}, [], [(near, 0.93), (far, 0.7), (unrelated, 0.3)])
    assert [(m.client_id, m.blocking) for m, _ in ranked] == [
        (str(near["id"]), True), (str(far["id"]), False)]


def test_one_client_matched_several_ways_is_one_match_with_every_reason():
    client = row(inn="7707083893")
    [(match, _)] = rank({"inn": "7707083893"},
                        [("inn", "7707083893", client), ("email", "a@b.ru", client)],
                        [(client, 1.0)])
    assert [r["reason"] for r in match.reasons] == ["inn", "email", "name"]
    assert match.score == 0.98

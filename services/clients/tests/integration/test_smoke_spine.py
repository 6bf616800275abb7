import pytest

from crm_platform.errors import Conflict

pytestmark = pytest.mark.integration

STROYMETALL = {"short_name": "ООО «Стройметалл»", "inn": "7707083893", "kpp": "770701001",
               "phones": ["8 (343) 123-45-67"], "emails": ["Sales@StroyMetall.RU"],
               "region": "RU-SVE"}


def test_create_then_refuse_for_another_manager(svc, org):
    result = svc.create_client(STROYMETALL, contacts=[{"full_name": "Петров Пётр",
                                                       "phones": ["+7 916 123 45 67"]}])
    assert result["created"]
    card = result["client"]
    assert card["phones"] == ["+73431234567"] and card["emails"] == ["sales@stroymetall.ru"]
    assert card["legal_form"] == "ООО" and card["owner_name"] == "Менеджер ural 1"

    again = svc.create_client({"short_name": "Стройметалл, ООО"})
    assert again["created"] is False and again["client"]["id"] == card["id"]

    with pytest.raises(Conflict) as caught:
        svc.call("create_client", {"short_name": "СТРОЙМЕТАЛЛ"}, as_user="m.volga.1")
    assert caught.value.code == "client_owned"
    assert "Менеджер ural 1" in caught.value.detail and "Уральский отдел" in caught.value.detail

    matches = svc.find_duplicates({"short_name": "x", "phones": ["+7 916 123-45-67"]})
    assert matches[0]["client_id"] == card["id"] and matches[0]["blocking"]

from decimal import Decimal

import pytest

from crm_platform.errors import ValidationFailed
from services.logistics.domain.cargo import ProductSpec, cargo_of
from services.logistics.domain.fleet import (
    check_carrier,
    check_driver,
    check_vehicle,
    normalise_phone,
    normalise_plate,
)

D = Decimal


@pytest.mark.parametrize("raw, plate", [
    ("a 123 bc 77", "А123ВС77"), ("А123ВС777", "А123ВС777"), ("ах-1234 66", "АХ123466"),
    ("м 001 мм 196", "М001ММ196")])
def test_plates_are_normalised(raw, plate):
    assert normalise_plate(raw) == plate


@pytest.mark.parametrize("raw", ["", "123", "Б123ВС77", "А12ВС77", "АBC"])
def test_bad_plates_are_refused(raw):
    with pytest.raises(ValidationFailed) as err:
        normalise_plate(raw)
    assert "plate" in err.value.fields


def test_phone_in_e164():
    assert normalise_phone("8 (912) 345-67-89") == "+79123456789"
    with pytest.raises(ValidationFailed):
        normalise_phone("12345")


def test_vehicle_checks_every_field():
    with pytest.raises(ValidationFailed) as err:
        check_vehicle({"plate": "x", "kind": "van", "payload_t": "-1", "body_length_m": "abc",
                       "ownership": "own"}, carrier_exists=lambda _: True)
    assert set(err.value.fields) >= {"plate", "kind", "payload_t", "body_length_m",
                                     "per_km_rate", "per_hour_rate"}
    hired = check_vehicle({"plate": "А123ВС77", "kind": "crane", "payload_t": "10",
                           "body_length_m": "8.5", "ownership": "carrier", "carrier_id": "c1"},
                          carrier_exists=lambda cid: cid == "c1")
    assert hired["payload_t"] == D("10") and hired["per_km_rate"] is None
    with pytest.raises(ValidationFailed) as err:
        check_vehicle({"plate": "А123ВС77", "kind": "crane", "payload_t": "10",
                       "body_length_m": "8.5", "ownership": "carrier", "carrier_id": "c2"},
                      carrier_exists=lambda cid: cid == "c1")
    assert err.value.fields == {"carrier_id": ["перевозчик не найден"]}


def test_carrier_and_driver():
    assert check_carrier({"name": " ТК Урал ", "rate_kind": "per_km", "rate": "55.5"})["rate"] \
        == D("55.5")
    with pytest.raises(ValidationFailed) as err:
        check_carrier({"name": "", "rate_kind": "per_hour", "rate": "x"})
    assert set(err.value.fields) == {"name", "rate_kind", "rate"}
    driver = check_driver({"full_name": "Иванов  Иван", "phone": "89123456789",
                           "licence": "66 12 345678"}, carrier_exists=lambda _: False)
    assert driver == {"full_name": "Иванов Иван", "phone": "+79123456789",
                      "licence": "6612345678", "carrier_id": None, "user_id": None,
                      "active": True}


def test_cargo_weight_rules():
    sheet, panel = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    specs = {sheet: ProductSpec(kg_per_unit=D("4.6"), length_m=D("6.0")),
             panel: ProductSpec(kg_per_unit=None, length_m=D("12.0"), m3_per_unit=D("0.1"))}
    cargo = cargo_of([
        {"product_guid": sheet, "quantity": "100", "unit_code": "055", "weight_kg": None},
        {"product_guid": panel, "quantity": "10", "unit_code": "796", "weight_kg": "250.5"},
        {"product_guid": None, "quantity": "1.5", "unit_code": "168"},
    ], specs)
    assert cargo.weight_kg == D("460") + D("250.5") + D("1500")
    assert cargo.max_length_m == D("12.0") and cargo.volume_m3 == D("1.000")
    unknown = cargo_of([{"product_guid": None, "product_name": "Саморезы", "quantity": "5",
                         "unit_code": "796"}], specs)
    assert unknown.weight_kg is None and unknown.unknown_lines == ("Саморезы",)

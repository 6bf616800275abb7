"""The pure pieces of the API conventions: If-Match parsing, the version an update needs, ETags,
Idempotency-Key checks and fingerprints, cursors and sort specifications."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from marshmallow import ValidationError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from crm_platform.errors import DomainError, ValidationFailed
from crm_platform.idempotency import fingerprint, valid_key
from crm_platform.paging import decode_cursor, encode_cursor, parse_sort
from gateway.api import (
    PreconditionFailed,
    PreconditionRequired,
    etag_of,
    parse_if_match,
    problem_for,
    required_version,
)
from gateway.schemas import PageQuery, page_of, sort_field


def request(**headers) -> Request:
    return Request(EnvironBuilder(method="PATCH", headers=headers).get_environ())


# -- If-Match -------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, version", [('"3"', 3), ('W/"3"', 3), ("3", 3), (" 12 ", 12),
                                             (None, None), ("*", None), ("", None)])
def test_if_match_forms(header, version):
    assert parse_if_match(header) == version


@pytest.mark.parametrize("header", ['"abc"', '"-1"', '"1.5"', "1234567890", 'W/""'])
def test_unreadable_if_match_is_422_naming_the_header(header):
    with pytest.raises(ValidationFailed) as caught:
        parse_if_match(header)
    assert set(caught.value.fields) == {"If-Match"}


def test_an_update_without_any_version_is_428():
    with pytest.raises(PreconditionRequired) as caught:
        required_version(request(), {"segment": "x"})
    assert caught.value.status == 428 and caught.value.code == "precondition_required"
    assert set(caught.value.fields) == {"If-Match"}


def test_the_version_comes_from_the_header_or_the_body_and_they_must_agree():
    assert required_version(request(**{"If-Match": '"4"'}), {}) == 4
    assert required_version(request(), {"expected_version": 5}) == 5
    assert required_version(request(**{"If-Match": '"6"'}), {"expected_version": 6}) == 6
    with pytest.raises(ValidationFailed):
        required_version(request(**{"If-Match": '"6"'}), {"expected_version": 7})


def test_if_match_star_is_a_deliberate_overwrite():
    assert required_version(request(**{"If-Match": "*"}), {}) is None


def test_etag_is_the_quoted_integer_version_only():
    assert etag_of({"version": 7}) == '"7"'
    assert etag_of({"version": True}) is None
    assert etag_of({"version": "7"}) is None
    assert etag_of([{"version": 7}]) is None
    assert etag_of(None) is None


def test_precondition_problems_are_412_and_428():
    failed = problem_for(PreconditionFailed("изменили", extra={"version": 2}))
    required = problem_for(PreconditionRequired("нужна версия"))

    assert (failed.status_code, required.status_code) == (412, 428)
    assert failed.mimetype == "application/problem+json"


def test_retry_after_travels_from_the_problem_to_the_header():
    response = problem_for(DomainError("ещё выполняется", code="idempotency_in_progress",
                                       extra={"retry_after": 1}))
    assert response.headers["Retry-After"] == "1"
    assert "Retry-After" not in problem_for(DomainError("x")).headers


# -- Idempotency-Key ------------------------------------------------------------------------------

@pytest.mark.parametrize("key, ok", [("a", True), ("x" * 200, True), ("x" * 201, False),
                                     ("", False), ("with space", False), ("ключ", False),
                                     ("tab\t", False), ("9f1c-4b2e_A:~!", True)])
def test_keys_are_1_to_200_visible_ascii_characters(key, ok):
    assert valid_key(key) is ok


def test_the_fingerprint_covers_method_path_and_body():
    base = fingerprint("POST", "/api/v1/clients", b'{"a": 1}')

    assert base == fingerprint("post", "/api/v1/clients", b'{"a": 1}')
    assert len(base) == 64
    assert base != fingerprint("PUT", "/api/v1/clients", b'{"a": 1}')
    assert base != fingerprint("POST", "/api/v1/clients?x=1", b'{"a": 1}')
    assert base != fingerprint("POST", "/api/v1/clients", b'{"a": 2}')
    # Parts are length-prefixed: moving bytes between path and body changes the print.
    assert fingerprint("POST", "/a", b"bc") != fingerprint("POST", "/ab", b"c")


# -- cursors and sorting --------------------------------------------------------------------------

def test_a_cursor_round_trips_its_values():
    at = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)
    cursor = encode_cursor("-created", at, Decimal("12.50"), 7)

    assert "=" not in cursor  # URL-safe, no padding
    assert decode_cursor(cursor, 4) == ["-created", at.isoformat(), "12.50", "7"]
    assert decode_cursor(None, 2) is None and decode_cursor("", 2) is None


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", encode_cursor("a", "b")])
def test_a_foreign_cursor_is_422(cursor):
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor, 3)
    assert set(caught.value.fields) == {"cursor"}


def test_sort_specifications_are_whitelisted():
    table = sa.table("t", sa.column("created_at"), sa.column("name"))
    sorts = {"created": table.c.created_at, "name": table.c.name}

    assert (parse_sort(None, sorts, "-created").name,
            parse_sort(None, sorts, "-created").descending) == ("created", True)
    assert parse_sort("name", sorts, "-created").descending is False
    for bad in ("inn", "--name", "-", "name "):
        if bad.strip() in sorts:
            continue
        with pytest.raises(ValidationFailed) as caught:
            parse_sort(bad, sorts, "-created")
        assert set(caught.value.fields) == {"sort"}


def test_the_gateway_sort_field_accepts_both_directions_only():
    from marshmallow import Schema

    schema = type("Q", (Schema,), {"sort": sort_field(["name", "created"], "-created")})()
    assert schema.load({}) == {"sort": "-created"}
    assert schema.load({"sort": "name"}) == {"sort": "name"}
    with pytest.raises(ValidationError):
        schema.load({"sort": "password"})


def test_page_queries_and_page_schemas():
    assert PageQuery().load({}) == {"limit": 50}
    with pytest.raises(ValidationError) as caught:
        PageQuery().load({"limit": "0", "cursor": ""})
    assert set(caught.value.messages) == {"limit", "cursor"}
    from gateway.schemas import RegionSchema

    page = page_of(RegionSchema)
    assert page is page_of(RegionSchema)  # one schema class per item: one OpenAPI component
    assert page().dump({"items": [{"code": "RU-SVE", "name": "x"}], "next_cursor": None}) == {
        "items": [{"code": "RU-SVE", "name": "x"}], "next_cursor": None}

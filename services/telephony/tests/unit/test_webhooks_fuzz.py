"""Hostile Mango Office and Zadarma webhooks (issue 11, part 3): bad signatures, bad JSON, huge
fields and nonsense values. Each either parses into something the telephony tables can hold, or
is refused with ``BadSignature`` (401) / ``BadPayload`` (422) — never another exception, which
would be a 500, and never something the database refuses (a 500 after the signature passed)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.telephony.domain import cloud
from services.telephony.domain.calls import FinishedCall, Ringing
from services.telephony.domain.cloud import BadPayload, BadSignature, CloudError
from services.telephony.tests import cloud_samples as s
from services.telephony.tests.unit.test_ami_fuzz import EXTENSION_MAX, KEY_MAX, assert_storable

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEY, SALT, SECRET = "vpbx-key-1f9a", "salt-7c2e", "zd-secret-93b1"
INT_MAX = 2**31 - 1

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(["", " ", "0", "1", "-1", "1e300", "1e400", "nan", "12.0", "1700000000",
                     "99999999999999999999", "+74951234567", "101", "\x00", "abonent",
                     "Appeared", "ivr"]),
    st.text(min_size=201, max_size=2000),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=3),
                           max_leaves=8)
MANGO_FIELDS = ["entry_id", "call_id", "seq", "call_state", "location", "timestamp",
                "disconnect_reason", "call_direction", "create_time", "end_time", "talk_time",
                "forward_time", "entry_result", "line_number"]
party = st.fixed_dictionaries({}, optional={k: scalars for k in (
    "number", "extension", "line_number", "acd_group")})
mango_payloads = st.fixed_dictionaries(
    {}, optional={**{k: scalars for k in MANGO_FIELDS}, "from": party | scalars,
                  "to": party | scalars})
ZADARMA_FIELDS = ["pbx_call_id", "caller_id", "called_did", "destination", "internal",
                  "call_start", "duration", "disposition", "status_code", "is_recorded",
                  "call_id_with_rec"]
form_text = st.one_of(st.text(max_size=30), st.text(min_size=150, max_size=3000),
                      st.sampled_from(["", "101", "2026-11-27 10:00:00", "9999-12-31 23:59:59",
                                       "2147483647", "99999999999", "-3", "answered", "1",
                                       "\x00"]))
zadarma_forms = st.builds(
    lambda event, rest: {"event": event, **rest},
    st.sampled_from(list(cloud.ZADARMA_SIGNED) + ["NOTIFY_BOGUS", ""]),
    st.fixed_dictionaries({}, optional={k: form_text for k in ZADARMA_FIELDS}))


def assert_storable_leg(leg: cloud.MangoLeg) -> None:
    # mango_legs: call_id and entry_id VARCHAR(200), seq INTEGER.
    assert 0 < len(leg.call_id) <= KEY_MAX and 0 < len(leg.entry_id) <= KEY_MAX
    assert -INT_MAX <= leg.seq <= INT_MAX
    assert leg.at.tzinfo is not None
    for text in (leg.call_id, leg.entry_id, leg.to_extension or "", leg.from_extension or ""):
        assert "\x00" not in text


@FUZZ
@given(form=st.dictionaries(st.sampled_from(["vpbx_api_key", "sign", "json", "x"]),
                            st.text(max_size=200) | st.none(), max_size=4))
def test_mango_unsigned_or_badly_signed_forms_are_refused(form):
    try:
        cloud.verify_mango(form, KEY, SALT)
    except BadSignature:
        return
    raise AssertionError("a form nobody signed with the key and salt was accepted")


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(
    lambda b: b.decode("latin-1")))
def test_mango_signed_garbage_json_is_a_bad_payload(text):
    form = s.mango_form({}, KEY, SALT, text=text or " ")
    try:
        payload = cloud.verify_mango(form, KEY, SALT)
    except BadPayload:
        return
    assert isinstance(payload, dict)


@FUZZ
@given(payload=mango_payloads, summary=st.booleans())
def test_mango_signed_payloads_parse_into_storable_calls_or_are_refused(payload, summary):
    text = json.dumps(payload, ensure_ascii=False, allow_nan=True)
    parsed = cloud.verify_mango(s.mango_form(payload, KEY, SALT, text=text), KEY, SALT)
    try:
        if summary:
            assert_storable(cloud.mango_summary(parsed, s.MOSCOW))
        else:
            leg = cloud.mango_call_event(parsed, s.MOSCOW)
            assert_storable_leg(leg)
            ringing = cloud.mango_ringing(leg)
            assert ringing is None or isinstance(ringing, Ringing)
            if ringing is not None:
                assert_storable(ringing)
    except BadPayload:
        pass


@FUZZ
@given(form=zadarma_forms, signature=st.none() | st.text(max_size=60))
def test_zadarma_forged_signatures_are_refused(form, signature):
    try:
        cloud.verify_zadarma(form, signature, SECRET)
    except CloudError:
        return
    assert signature == cloud.zadarma_sign(form["event"], form, SECRET)


@FUZZ
@given(forms=st.lists(zadarma_forms, min_size=1, max_size=6))
def test_zadarma_signed_forms_fold_into_storable_calls_or_are_refused(forms):
    builder = cloud.ZadarmaCallBuilder()
    for form in forms:
        try:
            cloud.verify_zadarma(form, cloud.zadarma_sign(form["event"], form, SECRET), SECRET)
            event = cloud.zadarma_event(form, s.MOSCOW)
        except BadPayload:
            continue
        # zadarma_events: pbx_call_id VARCHAR(200), internal VARCHAR(16), the form as JSONB
        # (which cannot hold U+0000).
        assert 0 < len(event.pbx_call_id) <= KEY_MAX
        assert len(event.internal or "") <= EXTENSION_MAX
        assert all("\x00" not in k + v for k, v in form.items())
        for item in builder.feed(event):
            assert isinstance(item, FinishedCall | Ringing)
            assert_storable(item)

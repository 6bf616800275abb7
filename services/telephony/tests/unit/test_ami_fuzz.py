"""Hostile AMI streams (issue 11, part 3): garbage bytes, truncated and overlong lines, huge
fields and nonsense values must never crash the framer or the call assembler. The framer either
returns blocks or raises ``AmiProtocolError`` (drop the connection); the assembler turns any
block into nothing or into calls that fit the telephony tables."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.telephony.domain.ami import MAX_BLOCK, AmiFramer, AmiProtocolError, CallAssembler
from services.telephony.domain.calls import DIRECTIONS, DISPOSITIONS, FinishedCall, Ringing

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MSK = ZoneInfo("Europe/Moscow")

# What the telephony tables hold (services/telephony/models.py: calls).
KEY_MAX, EXTENSION_MAX, NUMBER_MAX, RECORDING_MAX, INT_MAX = 200, 16, 32, 500, 2**31 - 1

AMI_KEYS = ["Event", "Linkedid", "Uniqueid", "DestLinkedid", "DestUniqueid", "Channel",
            "DestChannel", "Timestamp", "Context", "Exten", "CallerIDNum", "ConnectedLineNum",
            "DialStatus", "DialString", "Cause", "UniqueID", "LinkedID", "Source",
            "Destination", "DestinationContext", "DestinationChannel", "Disposition",
            "StartTime", "AnswerTime", "EndTime", "Duration", "BillableSeconds", "UserField",
            "Variable", "Value"]
EVENTS = ["Newchannel", "Newstate", "DialBegin", "DialEnd", "Hangup", "Cdr", "BridgeEnter",
          "VarSet", "NewConnectedLine", "NewCallerid", "Junk"]
weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "<unknown>", "nan", "inf", "-inf", "1e400", "-1e400", "1e20", "-1e20",
                     "99999999999999999999", "2026-13-45 25:61:61", "9999-12-31 23:59:59",
                     "0001-01-01 00:00:00", "PJSIP/101-0000", "Local/101@ctx-1;2",
                     "PJSIP/" + "9" * 300 + "-1", "from-trunk", "1700000000.5", "-5"]),
    st.text(min_size=201, max_size=3000),
)
block_strategy = st.dictionaries(
    st.sampled_from(AMI_KEYS), weird_text, max_size=12,
).map(lambda d: d) | st.builds(
    lambda event, linked, rest: {"Event": event, "Linkedid": linked, "Uniqueid": linked,
                                 **rest},
    st.sampled_from(EVENTS), weird_text,
    st.dictionaries(st.sampled_from(AMI_KEYS[3:]), weird_text, max_size=10))


def assert_storable(item) -> None:
    assert isinstance(item, FinishedCall | Ringing)
    assert item.key and len(item.key) <= KEY_MAX
    assert item.direction in DIRECTIONS
    if isinstance(item, Ringing):
        assert item.extension and len(item.extension) <= EXTENSION_MAX
        assert item.at is None or item.at.tzinfo is not None
        return
    assert item.disposition in DISPOSITIONS
    assert all(len(ext) <= EXTENSION_MAX for ext in item.rang)
    assert item.answered_by is None or len(item.answered_by) <= EXTENSION_MAX
    for number in (item.our_number, item.external_number):
        assert number is None or len(number) <= NUMBER_MAX
    assert item.recording is None or len(item.recording) <= RECORDING_MAX
    assert isinstance(item.started_at, datetime) and item.started_at.tzinfo is not None
    assert item.ended_at.tzinfo is not None
    assert -INT_MAX <= item.duration_seconds <= INT_MAX
    assert -INT_MAX <= item.talk_seconds <= INT_MAX


@FUZZ
@given(data=st.binary(max_size=4000), cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_framer_takes_any_bytes_in_any_split(data, cuts):
    framer = AmiFramer()
    pieces, last = [], 0
    for cut in sorted(set(c for c in cuts if c <= len(data))):
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    try:
        for piece in pieces:
            for block in framer.feed(piece):
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in block.items())
    except AmiProtocolError:
        # A broken framer stays broken: the client must reconnect with a new one.
        with pytest.raises(AmiProtocolError):
            framer.feed(b"Event: Hangup\r\n\r\n")


@FUZZ
@given(size=st.integers(MAX_BLOCK + 1, MAX_BLOCK * 3), newline=st.booleans())
def test_an_overlong_line_or_block_is_refused_not_buffered(size, newline):
    framer = AmiFramer()
    data = b"Event: Newchannel\r\nUserField: " + b"x" * size + (b"\r\n" if newline else b"")
    with pytest.raises(AmiProtocolError):
        for start in range(0, len(data), 8192):
            framer.feed(data[start:start + 8192])
    # A stream never makes the framer keep more than one block's worth.
    assert len(framer._buf) <= MAX_BLOCK + 8192


@FUZZ
@given(blocks=st.lists(block_strategy, max_size=25), now=st.floats(allow_nan=True))
def test_assembler_never_crashes_and_emits_only_storable_calls(blocks, now):
    assembler = CallAssembler({"from-trunk"}, {"+74951234567"}, tz=MSK, grace_seconds=0)
    out = []
    for block in blocks:
        out += assembler.feed(block)
    out += assembler.flush(now if now == now and abs(now) < 1e11 else None)
    out += assembler.flush(4e9)
    for item in out:
        assert_storable(item)


def test_truncated_stream_leaves_a_pending_block_and_no_call():
    framer = AmiFramer()
    blocks = framer.feed(b"Asterisk Call Manager/5.0.1\r\nEvent: Newchannel\r\nLinkedid: 17")
    assert blocks == [] and framer.pending
    assert framer.banner == "Asterisk Call Manager/5.0.1"

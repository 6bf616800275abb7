"""AMI framing and call assembly over recorded Asterisk 18 streams (tests/fixtures/ami)."""

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.telephony.domain.ami import (
    AmiFramer,
    AmiProtocolError,
    CallAssembler,
    channel_extension,
)
from services.telephony.domain.calls import DIRECTIONS, DISPOSITIONS, FinishedCall, Ringing

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ami"
NAMES = ["answered_inbound_unknown", "missed_ring_group_known", "outbound", "internal"]
MSK = ZoneInfo("Europe/Moscow")
TRUNKS = {"from-trunk"}
OURS = {"+74951234567"}


def raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.txt").read_bytes()


def blocks_of(data: bytes) -> list[dict]:
    return AmiFramer().feed(data)


def assembler() -> CallAssembler:
    return CallAssembler(TRUNKS, OURS, tz=MSK)


def run(chunks, asm=None, flush=True):
    asm = asm or assembler()
    framer = AmiFramer()
    out = []
    for chunk in chunks:
        for block in framer.feed(chunk):
            out.extend(asm.feed(block))
    assert not framer.pending
    if flush:
        out.extend(asm.flush((asm.clock or 0) + 3600))
    return out


def finished(out) -> list[FinishedCall]:
    return [o for o in out if isinstance(o, FinishedCall)]


def ringing(out) -> list[Ringing]:
    return [o for o in out if isinstance(o, Ringing)]


def one_call(name: str) -> tuple[FinishedCall, list[Ringing]]:
    out = run([raw(name)], flush=False)   # each fixture completes by itself, no flush needed
    calls = finished(out)
    assert len(calls) == 1
    return calls[0], ringing(out)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in points + [len(data)]:
        pieces.append(data[prev:p])
        prev = p
    return pieces


# --------------------------------------------------------------------------- framing


def test_fixtures_are_plain_crlf_ami():
    for name in NAMES:
        data = raw(name)
        assert data.startswith(b"Asterisk Call Manager/")
        assert b"\n" not in data.replace(b"\r\n", b"")
        framer = AmiFramer()
        blocks = framer.feed(data)
        assert framer.banner == "Asterisk Call Manager/7.0.3"
        assert blocks[0] == {"Response": "Success", "Message": "Authentication accepted"}
        assert all("Timestamp" in b for b in blocks[1:])
        events = {b["Event"] for b in blocks[1:]}
        assert {"Newchannel", "DialBegin", "DialEnd", "Hangup", "Cdr"} <= events


def test_framer_byte_by_byte_and_bare_lf():
    data = raw("internal")
    whole = blocks_of(data)
    framer = AmiFramer()
    out = []
    for i in range(len(data)):
        out.extend(framer.feed(data[i:i + 1]))
    assert out == whole
    assert blocks_of(data.replace(b"\r\n", b"\n")) == whole


def test_framer_repeated_keys_last_wins_getall_keeps_all():
    framer = AmiFramer()
    (block,) = framer.feed(
        b"Event: Foo\r\nChanVariable: a=1\r\nChanVariable: b=2\r\njunk line\r\n\r\n")
    assert block["ChanVariable"] == "b=2"
    assert block.getall("ChanVariable") == ["a=1", "b=2"]
    assert block == {"Event": "Foo", "ChanVariable": "b=2"}


def test_framer_values_with_colons_and_blank_lines():
    framer = AmiFramer()
    out = framer.feed(b"\r\n\r\nEvent: X\r\nData: a: b: c\r\nEmpty:\r\n\r\n\r\n")
    assert out == [{"Event": "X", "Data": "a: b: c", "Empty": ""}]


def test_oversize_block_refused():
    framer = AmiFramer()
    line = b"Variable: " + b"x" * 1000 + b"\r\n"
    with pytest.raises(AmiProtocolError):
        for _ in range(80):
            framer.feed(line)
    with pytest.raises(AmiProtocolError):
        framer.feed(b"\r\n")       # a failed framer stays failed


def test_endless_line_refused():
    framer = AmiFramer(max_block=1024)
    framer.feed(b"Event: X\r\n")
    with pytest.raises(AmiProtocolError):
        for _ in range(10):
            framer.feed(b"y" * 200)


def test_just_under_the_limit_is_fine():
    framer = AmiFramer(max_block=1024)
    body = b"Event: X\r\nV: " + b"z" * 900 + b"\r\n\r\n"
    assert framer.feed(body) == [{"Event": "X", "V": "z" * 900}]
    assert framer.feed(body)    # the limit is per block, not per connection


def test_channel_extension():
    assert channel_extension("PJSIP/101-0000002a") == "101"
    assert channel_extension("SIP/10234-00000001") == "10234"
    assert channel_extension("Local/102@from-internal-0000000c;1") == "102"
    assert channel_extension("PJSIP/mts-trunk-00000010") is None
    assert channel_extension("PJSIP/123456-00000001") is None
    assert channel_extension(None) is None


# --------------------------------------------------------------------------- calls


def test_answered_inbound_unknown():
    call, rings = one_call("answered_inbound_unknown")
    assert call.key == "1741762801.16" and call.pbx == "asterisk"
    assert call.direction == "inbound"
    assert call.our_number == "+74951234567"
    assert call.external_number == "+79031234567" and call.external_raw is None
    assert call.rang == ("101",)
    assert call.answered_by == "101" and call.answered
    assert call.disposition == "answered"
    assert call.started_at == datetime(2025, 3, 12, 10, 0, 1, tzinfo=MSK)
    assert call.answered_at == datetime(2025, 3, 12, 10, 0, 9, tzinfo=MSK)
    assert call.ended_at == datetime(2025, 3, 12, 10, 3, 24, tzinfo=MSK)
    assert call.started_at.astimezone(UTC).hour == 7
    assert call.duration_seconds == 203 and call.talk_seconds == 195
    assert call.recording == (
        "/var/spool/asterisk/monitor/2025/03/12/"
        "in-74951234567-89031234567-20250312-100001-1741762801.16.wav")
    assert call.extra["dial_statuses"] == {"101": "ANSWER"}
    assert not call.extra["incomplete"]
    assert [(r.key, r.extension, r.external_number, r.direction) for r in rings] == [
        ("1741762801.16", "101", "+79031234567", "inbound")]
    assert rings[0].at.tzinfo is not None


def test_missed_ring_group_is_one_call():
    call, rings = one_call("missed_ring_group_known")
    assert call.key == "1741763100.20"
    assert call.direction == "inbound"
    assert call.rang == ("101", "102", "103")
    assert call.answered_by is None and not call.answered
    assert call.disposition == "no_answer"
    assert call.external_number == "+79165552741"
    assert call.our_number == "+74951234567"
    assert call.talk_seconds == 0 and call.answered_at is None
    assert call.duration_seconds == 25
    assert call.extra["cdr_count"] == 3
    assert call.recording is None
    assert [r.extension for r in rings] == ["101", "102", "103"]
    assert {r.external_number for r in rings} == {"+79165552741"}


def test_outbound():
    call, rings = one_call("outbound")
    assert call.direction == "outbound"
    assert call.external_number == "+79161234567"
    assert call.our_number == "+74951234567"
    assert call.rang == ("102",) and call.answered_by == "102"
    assert call.disposition == "answered"
    assert call.talk_seconds == 72 and call.duration_seconds == 84
    assert call.recording.endswith("out-89161234567-102-20250312-101000-1741763400.30.wav")
    assert rings == []     # the far end ringing is no screen pop


def test_internal():
    call, rings = one_call("internal")
    assert call.direction == "internal"
    assert call.external_number is None and call.our_number is None
    assert call.rang == ("103",) and call.answered_by == "103"
    assert call.extra["caller_extension"] == "101"
    assert call.talk_seconds == 40
    assert [(r.extension, r.direction, r.external_number) for r in rings] == [
        ("103", "internal", None)]


def test_values_are_in_the_domain():
    for name in NAMES:
        call, _ = one_call(name)
        assert call.direction in DIRECTIONS and call.disposition in DISPOSITIONS
        assert call.started_at <= call.ended_at


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(NAMES), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_any_chunking_gives_the_same_calls(name, cuts):
    data = raw(name)
    assert run(split(data, cuts)) == run([data])


def test_same_stream_twice_emits_nothing_new():
    asm = assembler()
    first = run([raw(n) for n in NAMES], asm)
    assert len(finished(first)) == 4
    again = run([raw(n) for n in NAMES], asm)
    assert again == []


def test_streams_without_cdr_finish_after_the_grace():
    blocks = [b for b in blocks_of(raw("missed_ring_group_known")) if b.get("Event") != "Cdr"]
    asm = assembler()
    out = [o for b in blocks for o in asm.feed(b)]
    assert finished(out) == []
    assert asm.flush(asm.clock + 1) == []
    (call,) = asm.flush(asm.clock + 10)
    assert call.rang == ("101", "102", "103") and call.disposition == "no_answer"
    assert call.extra["cdr_count"] == 0
    assert call.duration_seconds == 25


def test_cdr_only_after_a_reconnect():
    """The assembler starts after the channels are gone: the Cdr alone makes the call."""
    blocks = [b for b in blocks_of(raw("answered_inbound_unknown")) if b.get("Event") == "Cdr"]
    asm = assembler()
    out = [o for b in blocks for o in asm.feed(b)] + asm.flush(asm.clock + 10)
    (call,) = finished(out)
    assert call.key == "1741762801.16"
    assert call.direction == "inbound" and call.answered_by == "101"
    assert call.external_number == "+79031234567" and call.talk_seconds == 195


def _all_blocks():
    return [b for n in NAMES for b in blocks_of(raw(n))]


def _keys_in(blocks):
    return {b.get("Linkedid") or b.get("UniqueID") for b in blocks
            if b.get("Linkedid") or (b.get("Event") == "Cdr")}


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reconnect_mid_stream_loses_and_doubles_nothing(data):
    blocks = _all_blocks()
    whole = {c.key: c for c in finished(_fed(assembler(), blocks))}
    cut = data.draw(st.integers(0, len(blocks)))
    resume = data.draw(st.integers(cut, len(blocks)))
    asm = assembler()
    out = [o for b in blocks[:cut] for o in asm.feed(b)]
    asm.note_reconnect()
    out += [o for b in blocks[resume:] for o in asm.feed(b)]
    out += asm.flush(asm.clock + 13 * 3600 if asm.clock else None)
    calls = finished(out)
    counts = Counter(c.key for c in calls)
    assert all(n == 1 for n in counts.values())
    seen = _keys_in(blocks[:cut] + blocks[resume:])
    assert set(counts) == seen
    # calls untouched by the gap come out as from the whole stream
    lost = _keys_in(blocks[cut:resume])
    for c in calls:
        if c.key not in lost:
            assert c == whole[c.key]


def _fed(asm, blocks):
    return [o for b in blocks for o in asm.feed(b)] + asm.flush((asm.clock or 0) + 3600)


def test_events_for_unknown_channels_are_tolerated():
    asm = assembler()
    assert asm.feed({"Event": "Hangup", "Uniqueid": "1.1", "Linkedid": "1.0",
                     "Channel": "PJSIP/101-00000001"}) == []
    assert asm.feed({"Event": "Cdr", "UniqueID": "9.9"}) == []
    assert asm.feed({"Event": "PeerStatus", "Peer": "PJSIP/101"}) == []
    assert asm.feed({"Response": "Success"}) == []
    calls = asm.flush(10**10)
    assert {c.key for c in calls} == {"1.0", "9.9"}


@pytest.mark.parametrize(
    "statuses,expected",
    [
        (("CANCEL", "CANCEL", "CANCEL"), "cancelled"),
        (("BUSY", "CANCEL", "CANCEL"), "busy"),
        (("BUSY", "NOANSWER", "NOANSWER"), "no_answer"),
        (("CHANUNAVAIL", "CONGESTION", "CHANUNAVAIL"), "failed"),
    ],
)
def test_missed_dispositions_from_dial_statuses(statuses, expected):
    blocks = blocks_of(raw("missed_ring_group_known"))
    it = iter(statuses)
    for b in blocks:
        if b.get("Event") == "DialEnd":
            b["DialStatus"] = next(it)
    asm = assembler()
    (call,) = finished([o for b in blocks for o in asm.feed(b)])
    assert call.disposition == expected and call.answered_by is None
    assert call.extra["dial_statuses"] == dict(zip(("101", "102", "103"), statuses, strict=True))

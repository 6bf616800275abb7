"""The PBX simulator (tools/pbx_simulator.py): the generated day is deterministic for a seed and
well-formed (the assembler makes exactly N calls of it, with the generated keys, numbers and
extensions); the AMI server logs in and replays over a real socket; the webhook builders sign."""

from __future__ import annotations

import socket
from collections import Counter
from datetime import date

import pytest

from services.telephony.domain.ami import AmiFramer, CallAssembler
from services.telephony.domain.calls import FinishedCall
from services.telephony.domain.cloud import verify_mango, verify_zadarma
from tools.pbx_simulator import (
    AmiServer,
    day_stream,
    mango_calls,
    recorded_stream,
    render,
    zadarma_calls,
)

EXTENSIONS = ["201", "202", "203", "204", "205"]
KNOWN = "+7 916 555-27-41"


def assemble(data: bytes) -> list[FinishedCall]:
    assembler = CallAssembler({"from-trunk", "from-pstn"}, set(), "Europe/Moscow")
    out = []
    for block in AmiFramer().feed(data):
        out.extend(assembler.feed(block))
    out.extend(assembler.flush(10**10))
    return [item for item in out if isinstance(item, FinishedCall)]


def stream(n, seed=7, **options):
    options = {"extensions": EXTENSIONS, "day": date(2026, 3, 2), "known": [KNOWN], **options}
    calls, blocks = day_stream(n, seed=seed, **options)
    return calls, b"".join(render(b) for b in blocks)


def test_the_day_is_deterministic_for_a_seed():
    assert stream(40) == stream(40)
    assert stream(40)[1] != stream(40, seed=8)[1]


@pytest.mark.parametrize("n", [1, 25, 120])
def test_every_generated_call_is_assembled_once(n):
    calls, data = stream(n)
    finished = assemble(data)
    assert len(finished) == n
    by_key = {c.key: c for c in calls}
    assert len(by_key) == n and {f.key for f in finished} == set(by_key)
    for call in finished:
        spec = by_key[call.key]
        expected = {"answered_inbound_unknown": ("inbound", "answered"),
                    "missed_ring_group_known": ("inbound", "no_answer"),
                    "outbound": ("outbound", "answered"),
                    "internal": ("internal", "answered")}[spec.shape]
        assert (call.direction, call.disposition) == expected
        assert call.external_number == ("+" + spec.external if spec.external else None)
        assert not call.extra.get("incomplete")
        assert set(call.rang) <= set(EXTENSIONS)
        assert call.answered_by is None or call.answered_by in EXTENSIONS
        assert call.started_at.date() == date(2026, 3, 2)
        assert 9 <= call.started_at.hour < 19
        if call.recording:
            assert "/2026/03/02/" in call.recording
    if n >= 120:
        assert len(Counter(c.shape for c in calls)) == 4
        assert any(c.external == "79165552741" for c in calls)      # the known client calls


def test_the_ami_server_logs_in_and_replays():
    server = AmiServer(recorded_stream(), port=0, username="crm", secret="s3cret").start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as refused:
            refused.sendall(b"Action: Login\r\nUsername: crm\r\nSecret: wrong\r\n\r\n")
            assert b"Authentication failed" in _read_all(refused)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"Action: Login\r\nActionID: a1\r\nUsername: crm\r\n"
                         b"Secret: s3cret\r\nEvents: on\r\n\r\n")
            last = render(recorded_stream()[-1])
            data = b""
            while not data.endswith(last):      # banner, response, FullyBooted, the stream
                chunk = sock.recv(65536)
                assert chunk
                data += chunk
        assert data.startswith(b"Asterisk Call Manager/")
        assert b"Response: Success\r\nActionID: a1\r\n" in data
        finished = assemble(data)
        assert len(finished) == 4 and not any(f.extra.get("incomplete") for f in finished)
    finally:
        server.stop()


def _read_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_webhook_calls_are_signed_and_fresh():
    mango = mango_calls(6, "k", "s", seed=2)
    assert len(mango) == 6
    entries = set()
    for requests in mango:
        for _, form in requests:
            entries.add(verify_mango(form, "k", "s")["entry_id"])
    assert len(entries) == 6
    zadarma = zadarma_calls(6, "secret", seed=2)
    ids = set()
    for requests in zadarma:
        for form, headers in requests:
            verify_zadarma(form, headers["Signature"], "secret")
            ids.add(form["pbx_call_id"])
    assert len(ids) == 6

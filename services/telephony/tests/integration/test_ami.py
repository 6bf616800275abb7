"""The Asterisk AMI client over a real TCP socket: a tiny AMI server replays the recorded streams
(answered inbound from an unknown number, a missed ring group from a known contact, an outbound
call, an internal one), refuses the first login, drops the connection mid-stream once, and later
replays everything again. Calls, events, the lead and the call-back task are checked, and that
the reconnect and the replay lose and double nothing."""

from __future__ import annotations

from pathlib import Path

import eventlet
import pytest
from eventlet.event import Event

from crm_platform.testing import wait_for
from services.telephony.ami_client import AmiCalls

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
STREAMS = ("answered_inbound_unknown", "missed_ring_group_known", "outbound", "internal")
HEADER_END = b"Authentication accepted\r\n\r\n"
KEYS = {"answered": "1741762801.16", "missed": "1741763100.20", "outbound": "1741763400.30",
        "internal": "1741763700.40"}
KNOWN_CONTACT = "+7 916 555-27-41"          # the caller of the missed ring group


def recorded() -> tuple[bytes, bytes]:
    """(banner and login response, every stream's events after it)."""
    header, bodies = b"", []
    for name in STREAMS:
        data = (FIXTURES / f"{name}.txt").read_bytes()
        cut = data.index(HEADER_END) + len(HEADER_END)
        header = header or data[:cut]
        bodies.append(data[cut:])
    return header, b"".join(bodies)


class AmiServer:
    """Accepts connections; the n-th gets ``scripts[n]``: after the login block it sends the
    bytes, then closes at once (``hold`` None) or when ``hold`` fires."""

    def __init__(self, scripts: list[tuple[bytes, Event | None]]):
        self.scripts = scripts
        self.logins: list[bytes] = []
        self.sent = 0                    # scripts fully sent
        self._listener = eventlet.listen(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = eventlet.spawn(self._serve)

    def _serve(self):
        while True:
            sock, _ = self._listener.accept()
            eventlet.spawn(self._session, sock, len(self.logins))
            self.logins.append(b"")

    def _session(self, sock, n):
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.logins[n] = data
            payload, hold = self.scripts[n] if n < len(self.scripts) else (b"", Event())
            for start in range(0, len(payload), 8192):     # in pieces, as a socket would
                sock.sendall(payload[start:start + 8192])
                eventlet.sleep(0)
            self.sent += 1
            if hold is not None:
                hold.wait()
        finally:
            sock.close()

    def stop(self):
        self._thread.kill()
        self._listener.close()


def ami_client(container) -> AmiCalls:
    return next(e for e in container.entrypoints if isinstance(e, AmiCalls))


def test_ami_stream_with_a_reconnect_and_a_replay(start_crm):
    header, body = recorded()
    # Cut mid-block inside the long answered call; the PBX's stream goes on from that block.
    cut = int(len(body) * 0.3)
    resume = body.rindex(b"\r\n\r\n", 0, cut) + 4
    release = Event()
    refused = (b"Asterisk Call Manager/7.0.3\r\nResponse: Error\r\n"
               b"ActionID: crm-telephony-login\r\nMessage: Authentication failed\r\n\r\n")
    server = AmiServer([(refused, None),                 # a refused login: try again later
                        (header + body[:cut], None),
                        (header + body[resume:], release),
                        (header + body, Event())])
    try:
        crm = start_crm(KNOWN_CONTACT, AMI_HOST="127.0.0.1", AMI_PORT=server.port,
                        AMI_USERNAME="crm", AMI_SECRET="s3cret")
        org = crm.org
        wait_for(lambda: crm.tel_sql.count("calls") == 4, timeout=20,
                 message="the four AMI calls")
        assert server.logins[0].startswith(b"Action: Login\r\n")
        assert b"Username: crm\r\n" in server.logins[0] and b"Events: on\r\n" in server.logins[0]
        assert len(server.logins) == 3            # refused, cut off, reconnected

        answered, missed = crm.call(KEYS["answered"]), crm.call(KEYS["missed"])
        outbound, internal = crm.call(KEYS["outbound"]), crm.call(KEYS["internal"])
        assert answered["pbx"] == "asterisk" and answered["direction"] == "inbound"
        assert answered["external_number"] == "+79031234567" and answered["client_id"] is None
        assert str(answered["user_id"]) == org.id("m.ural.1")
        assert answered["answered_by"] == "101" and answered["disposition"] == "answered"
        assert answered["lead_deal_id"] is not None
        assert missed["rang"] == ["101", "102", "103"] and missed["answered_by"] is None
        assert str(missed["client_id"]) == crm.known_client_id and missed["user_id"] is None
        assert str(missed["contact_id"]) == crm.known_contact_id     # the contact's mobile
        assert answered["contact_id"] is None
        assert str(missed["department_id"]) == str(org.departments["ural"])
        assert outbound["direction"] == "outbound" and outbound["answered_by"] == "102"
        assert str(outbound["user_id"]) == org.id("m.ural.2")
        assert outbound["external_number"] == "+79161234567" and outbound["talk_seconds"] > 0
        assert internal["direction"] == "internal" and internal["external_number"] is None

        events = crm.registered_events()
        assert len(events) == 3                   # the internal call is not a client call
        by_number = {e["external_number"]: e for e in events}
        assert by_number["+79031234567"]["answered"] is True
        assert by_number["+79031234567"]["deal_id"] == str(answered["lead_deal_id"])
        assert by_number["+79165552741"]["client_id"] == crm.known_client_id
        assert by_number["+79165552741"]["contact_id"] == crm.known_contact_id
        assert by_number["+79165552741"]["answered"] is False
        assert by_number["+79161234567"]["direction"] == "outbound"
        ringing = crm.ringing_events()
        assert {(r["call_key"], r["extension"]) for r in ringing} >= {
            (KEYS["missed"], "101"), (KEYS["missed"], "102"), (KEYS["missed"], "103")}

        # deals: one lead for the answering manager, one call-back task for the client's owner
        leads = wait_for(crm.call_leads, message="the lead of the unknown caller")
        assert len(leads) == 1 and str(leads[0]["owner_id"]) == org.id("m.ural.1")
        assert str(leads[0]["id"]) == str(answered["lead_deal_id"])
        tasks = wait_for(crm.callback_tasks, message="the call-back task")
        assert len(tasks) == 1 and str(tasks[0]["client_id"]) == crm.known_client_id
        assert str(tasks[0]["assignee_id"]) == org.id("m.ural.1")
        wait_for(lambda: crm.deals_sql.scalar(
            "SELECT count(*) FROM processed_events WHERE consumer LIKE '%call_registered'") == 3,
            message="deals to handle the three calls")
        # The call that made the lead is on the lead's timeline.
        timeline = crm.deals_sql.rows("SELECT kind, data FROM timeline WHERE deal_id = :d "
                                      "AND kind = 'call'", d=leads[0]["id"])
        assert [(t["kind"], t["data"]["answered"], t["data"]["direction"]) for t in timeline] == [
            ("call", True, "inbound")]
        before = crm.snapshot()

        # The PBX drops the connection; after the reconnect it replays everything again.
        release.send()
        wait_for(lambda: server.sent == 4, timeout=10, message="the replay")
        eventlet.sleep(2.5)                       # grace and flush
        assert crm.snapshot() == before
        assert len(crm.call_leads()) == 1 and len(crm.callback_tasks()) == 1
        assert ami_client(crm.telephony.container).connections == 3
    finally:
        server.stop()

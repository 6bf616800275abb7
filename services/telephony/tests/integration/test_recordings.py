"""Recording links: signed, short-lived, and only for those who may see the call's client (asked of
the real clients service as the caller); a call without a client is its manager's, their sales
head's and the director's; no recording, or no right to it, is the same 404."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from crm_platform.errors import NotFound, Unauthenticated
from services.telephony.recordings import recording_path, verify_recording_token

pytestmark = pytest.mark.integration

BASE, SECRET = "https://pbx.example.ru/records", "recordings-secret-1"
RECORDING = "/var/spool/asterisk/monitor/2025/03/12/in-74951234567-89031234567-1741762801.16.wav"


def add_call(crm, *, client_id=None, user=None, department=None, recording=None) -> str:
    call_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    crm.tel_sql.execute(
        "INSERT INTO calls (call_id, pbx, key, direction, external_number, user_id, "
        "department_id, client_id, started_at, ended_at, duration_seconds, talk_seconds, "
        "disposition, recording, created_at) VALUES (:id, 'asterisk', :key, 'inbound', "
        "'+79165552741', :user, :dept, :client, :now, :now, 60, 50, 'answered', :rec, :now)",
        id=call_id, key=call_id, user=crm.org.id(user) if user else None,
        dept=str(crm.org.departments[department]) if department else None,
        client=client_id, now=now, rec=recording)
    return call_id


def link(crm, call_id, user):
    return crm.telephony.call("recording_link", call_id, as_user=user)


def test_recording_links_follow_the_clients_access(start_crm):
    crm = start_crm("+7 916 555-27-41", RECORDINGS_BASE_URL=BASE + "/",
                    RECORDINGS_SECRET=SECRET, RECORDINGS_TTL_SECONDS=300)
    with_client = add_call(crm, client_id=crm.known_client_id, user="m.ural.1",
                           department="ural", recording=RECORDING)

    before = time.time()
    result = link(crm, with_client, "m.ural.1")              # the client's owner
    url = urlsplit(result["url"])
    path = url.path.removeprefix(urlsplit(BASE).path + "/")
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/{recording_path(RECORDING)}"
    assert path == RECORDING.lstrip("/")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    expires = int(query["expires"])
    assert before + 299 <= expires <= time.time() + 301
    assert datetime.fromisoformat(result["expires_at"]).timestamp() == expires
    assert verify_recording_token(SECRET, path, expires, query["token"])
    assert not verify_recording_token("other-secret", path, expires, query["token"])
    assert not verify_recording_token(SECRET, path + "x", expires, query["token"])
    assert not verify_recording_token(SECRET, path, expires, query["token"], now=expires + 1)

    for user in ("m.volga.1", "head.volga"):                 # another department
        with pytest.raises(NotFound):
            link(crm, with_client, user)
    with pytest.raises(Unauthenticated):
        link(crm, with_client, None)
    with pytest.raises(NotFound):
        link(crm, str(uuid.uuid4()), "m.ural.1")
    with pytest.raises(NotFound):
        link(crm, "not-a-uuid", "m.ural.1")

    no_recording = add_call(crm, client_id=crm.known_client_id, user="m.ural.1",
                            department="ural")
    with pytest.raises(NotFound):
        link(crm, no_recording, "m.ural.1")

    # no client: the call's manager, the sales head of its department, the director
    no_client = add_call(crm, user="m.ural.2", department="ural", recording="rec-42")
    for user in ("m.ural.2", "head.ural", "director"):
        assert link(crm, no_client, user)["url"].startswith(f"{BASE}/rec-42?expires=")
    for user in ("m.ural.1", "head.volga", "m.volga.1"):
        with pytest.raises(NotFound):
            link(crm, no_client, user)

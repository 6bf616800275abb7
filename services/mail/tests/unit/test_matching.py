import uuid

from services.mail.domain.matching import (
    KnownAddress,
    counterparties,
    deal_refs_in_subject,
    deal_tag,
    direction_of,
    is_own,
    match,
    parse_own_domains,
)
from services.mail.domain.parsing import parse_message

OWN = parse_own_domains("roofcrm.ru, @Roof.Example")
C1, C2, P1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def message(from_, to, cc=""):
    raw = f"From: {from_}\r\nTo: {to}\r\n{'Cc: ' + cc + chr(13) + chr(10) if cc else ''}" \
          f"Subject: s\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
    return parse_message(raw.encode())


def test_own_domains_and_subdomains():
    assert OWN == frozenset({"roofcrm.ru", "roof.example"})
    assert is_own("a@roofcrm.ru", OWN) and is_own("a@msk.roofcrm.ru", OWN)
    assert not is_own("a@notroofcrm.ru", OWN)


def test_direction_by_sender_or_sent_folder():
    inbound = message("Client <c@client.ru>", "m@roofcrm.ru")
    assert direction_of(inbound, "m@roofcrm.ru", OWN) == "inbound"
    assert direction_of(inbound, "m@roofcrm.ru", OWN, folder_is_sent=True) == "outbound"
    outbound = message("M@RoofCRM.ru", "c@client.ru")
    assert direction_of(outbound, "m@roofcrm.ru", OWN) == "outbound"
    assert direction_of(message("m@gmail.com", "c@client.ru"), "m@gmail.com",
                        frozenset()) == "outbound"


def test_counterparties_exclude_our_addresses():
    m = message("m@roofcrm.ru", "C@Client.ru, boss@roofcrm.ru", "other@client.ru")
    assert counterparties(m, "outbound", "m@roofcrm.ru", OWN) == ["c@client.ru",
                                                                 "other@client.ru"]
    inbound = message("colleague@roofcrm.ru", "m@roofcrm.ru")
    assert counterparties(inbound, "inbound", "m@roofcrm.ru", OWN) == []


def test_contact_address_beats_company_address_and_unknown_are_listed():
    book = {"info@client.ru": KnownAddress(C1), "ivan@client.ru": KnownAddress(C1, P1),
            "nobody@x.ru": KnownAddress(None)}
    result = match(["info@client.ru", "ivan@client.ru", "nobody@x.ru", "new@x.ru"], book)
    assert (result.client_id, result.contact_id) == (C1, P1)
    assert result.matched_address == "ivan@client.ru"
    assert result.unknown == ("nobody@x.ru", "new@x.ru")


def test_first_company_address_wins_without_contacts():
    book = {"a@one.ru": KnownAddress(C1), "b@two.ru": KnownAddress(C2)}
    assert match(["b@two.ru", "a@one.ru"], book).client_id == C2
    assert match(["z@z.ru"], book).client_id is None


def test_deal_reference_in_subject():
    deal_id = uuid.UUID("1a2b3c4d-0000-4000-8000-000000000001")
    assert deal_tag(deal_id) == "[CRM-1a2b3c4d]"
    assert deal_refs_in_subject("Re: [crm-1A2B3C4D] Счёт") == (["1a2b3c4d"], [])
    assert deal_refs_in_subject(f"по сделке {deal_id}") == ([], [deal_id])
    assert deal_refs_in_subject("Счёт 12345") == ([], [])

"""Distribution rules: round robin, least loaded, absences, caps, escalation timing."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.deals.domain.distribution import (
    Candidate,
    check_settings,
    department_for,
    escalation_due,
    pick,
)

DAY = date(2026, 11, 27)
A, B, C = "a-user", "b-user", "c-user"


def team(**overrides):
    people = {A: Candidate(A), B: Candidate(B), C: Candidate(C)}
    people.update(overrides)
    return list(people.values())


def test_round_robin_goes_around_in_a_fixed_order():
    given, last = [], None
    for _ in range(4):
        last = pick("round_robin", team(), DAY, None, last)
        given.append(last)
    assert given == [A, B, C, A]


def test_round_robin_skips_the_absent_and_the_dismissed():
    people = team(**{B: Candidate(B, absences=((DAY - timedelta(days=2), DAY),)),
                     C: Candidate(C, active=False)})
    assert pick("round_robin", people, DAY, None, A) == A
    assert pick("round_robin", people, DAY + timedelta(days=1), None, A) == B   # back tomorrow


def test_the_daily_cap_takes_a_manager_out():
    people = team(**{A: Candidate(A, assigned_today=2)})
    assert pick("round_robin", people, DAY, 2, None) == B
    assert pick("round_robin", [Candidate(A, assigned_today=2)], DAY, 2, None) is None


def test_least_loaded_takes_the_fewest_open_leads():
    people = team(**{A: Candidate(A, open_leads=5), B: Candidate(B, open_leads=1),
                     C: Candidate(C, open_leads=1, assigned_today=3)})
    assert pick("least_loaded", people, DAY, None) == B
    capped = team(**{A: Candidate(A, open_leads=5), B: Candidate(B, open_leads=1,
                                                                assigned_today=1)})
    assert pick("least_loaded", capped, DAY, 1) == C


def test_heads_are_not_given_leads_and_nobody_means_the_queue():
    assert pick("round_robin", [Candidate(A, role="sales_head")], DAY, None) is None
    assert pick("least_loaded", [], DAY, None) is None
    with pytest.raises(ValueError):
        pick("random", team(), DAY, None)


def test_region_picks_the_department_else_the_forms():
    departments = [("ural", ["RU-SVE", "RU-CHE"]), ("volga", ["RU-TA"])]
    assert department_for("RU-TA", departments, "ural") == "volga"
    assert department_for("RU-MOW", departments, "ural") == "ural"
    assert department_for(None, departments, None) is None


def test_escalation_after_the_limit_unless_someone_acted():
    at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert not escalation_due(at, None, at + timedelta(minutes=29), 30)
    assert escalation_due(at, None, at + timedelta(minutes=30), 30)
    assert not escalation_due(at, at + timedelta(minutes=5), at + timedelta(hours=2), 30)
    assert escalation_due(at, at - timedelta(minutes=5), at + timedelta(hours=2), 30)


def test_settings_are_checked_field_by_field():
    clean, errors = check_settings({"enabled": True, "mode": "least_loaded", "daily_cap": 10})
    assert not errors and clean == {"enabled": True, "mode": "least_loaded", "daily_cap": 10,
                                    "off_duty": []}
    _, errors = check_settings({"enabled": "yes", "mode": "random", "daily_cap": 0,
                                "off_duty": ["not-an-id"]})
    assert set(errors) == {"enabled", "mode", "daily_cap", "off_duty"}
    _, errors = check_settings({"off_duty": "a-user"})
    assert set(errors) == {"off_duty"}
    one = "0b9d2c1e-8f3a-4c56-9a47-3f0e2d1c9b11"
    clean, errors = check_settings({"enabled": True, "off_duty": [one, one.upper()]})
    assert not errors and [str(u) for u in clean["off_duty"]] == [one]


def test_a_manager_off_duty_gets_no_leads_though_present():
    people = team(**{A: Candidate(A, on_duty=False)})
    assert pick("round_robin", people, DAY, None, None) == B
    assert pick("least_loaded", team(**{B: Candidate(B, on_duty=False, open_leads=0),
                                         A: Candidate(A, open_leads=3),
                                         C: Candidate(C, open_leads=2)}), DAY, None) == C
    assert pick("round_robin", [Candidate(A, on_duty=False)], DAY, None) is None


def test_source_detail_keeps_known_keys_and_derives_the_kind():
    from services.deals.domain.distribution import clean_source_detail

    assert clean_source_detail(None, "web") == {"kind": "web_form"}
    assert clean_source_detail({"utm_source": " yandex ", "evil": "x", "form_key": "K"},
                               "web") == {"kind": "web_form", "utm_source": "yandex",
                                          "form_key": "K"}
    assert clean_source_detail({"kind": "campaign", "campaign_id": "c1"}, "manual")["kind"] \
        == "campaign"
    for bad in ("text", {"kind": "pigeon"}):
        with pytest.raises(ValueError):
            clean_source_detail(bad, "web")

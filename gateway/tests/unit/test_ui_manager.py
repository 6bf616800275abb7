"""The manager pages' pure helpers: money and Moscow time, the list filter <-> saved segment round
trip, the board's columns and scope, the calendar's grids, and the templates rendering with
typical service answers (no services needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from crm_platform.identity import Identity
from gateway.pages import PageSession
from gateway.ui import calendar, clients_pages, desk, funnel
from gateway.ui.manager_common import days_since, local_due, msk, page_render, rub

MANAGER = Identity(user_id="11111111-1111-1111-1111-111111111111", role="manager",
                   username="m.ural.1", full_name="Иванов Иван",
                   department_id="22222222-2222-2222-2222-222222222222")
HEAD = Identity(user_id="33333333-3333-3333-3333-333333333333", role="sales_head",
                username="head.ural", full_name="Соколова Анна",
                department_id=MANAGER.department_id)


def test_money_is_grouped_with_a_comma_and_the_rouble_sign():
    assert rub("1234567.891") == "1\u00a0234\u00a0567,89\u00a0₽"
    assert rub(Decimal("0")) == "0,00\u00a0₽"
    assert rub("-1500") == "-1\u00a0500,00\u00a0₽"
    assert rub(None) == "—" and rub("не число") == "—"


def test_times_show_in_moscow_and_form_dates_become_moscow_moments():
    assert msk("2026-11-27T11:05:00+00:00") == "27.11.2026 14:05"
    assert msk("2026-11-27") == "27.11.2026"
    assert msk("2026-11-27T11:05:00") == ""        # naive: not shown as if it were Moscow
    assert msk(None) == ""
    assert local_due("2026-11-27", "14:05") == "2026-11-27T14:05:00+03:00"
    assert local_due("2026-11-27", "") == "2026-11-27T18:00:00+03:00"
    assert local_due("27.11.2026", "14:05") is None
    assert days_since("2026-11-20T10:00:00+00:00", datetime(2026, 11, 27, 11, tzinfo=UTC)) == 7


def test_the_list_filter_round_trips_through_a_saved_segment():
    params = {"q": "Кровля", "region": "RU-SVE", "segment": "опт", "owner": "mine"}
    saved = clients_pages.filter_of_params(params, MANAGER)
    assert saved == [
        {"any": [{"field": "short_name", "op": "contains", "value": "Кровля"},
                 {"field": "inn", "op": "contains", "value": "Кровля"}]},
        {"field": "region", "op": "eq", "value": "RU-SVE"},
        {"field": "segment", "op": "eq", "value": "опт"},
        {"field": "owner_id", "op": "eq", "value": MANAGER.user_id}]
    assert clients_pages.params_of_filter(saved, MANAGER) == params
    pool = clients_pages.filter_of_params({"owner": "pool"}, MANAGER)
    assert clients_pages.params_of_filter(pool, MANAGER) == {"owner": "pool"}
    # A segment built elsewhere is not a list query: it is shown through segment_clients.
    other = [{"field": "last_interaction", "op": "older_than_days", "value": 90}]
    assert clients_pages.params_of_filter(other, MANAGER) is None
    assert clients_pages.params_of_filter({"any": []}, MANAGER) is None
    assert clients_pages.list_filters({"q": " 7707 ", "owner": "department"}, MANAGER) == {
        "q": "7707", "department_id": MANAGER.department_id}


def test_form_input_for_clients_and_duplicates():
    form = {"short_name": " ООО «Кровля» ", "inn": "7707083893", "phone": "8 343 123-45-67",
            "email": "", "address": "Екатеринбург, ул. Мира, 1", "contact_name": "Пётр",
            "contact_phone": "+73431112233"}
    card, contacts = clients_pages.client_input(form)
    assert card["short_name"] == "ООО «Кровля»" and card["phones"] == ["8 343 123-45-67"]
    assert card["emails"] == [] and card["addresses"] == [
        {"kind": "legal", "text": "Екатеринбург, ул. Мира, 1"}]
    assert contacts == [{"full_name": "Пётр", "position": None, "phones": ["+73431112233"],
                         "emails": []}]
    assert clients_pages.duplicate_candidate(form) == {
        "short_name": "ООО «Кровля»", "inn": "7707083893", "phones": ["8 343 123-45-67"]}


def test_desk_splits_overdue_from_today():
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    items = [{"id": "a", "due_at": "2026-11-27T08:00:00+00:00"},
             {"id": "b", "due_at": "2026-11-27T12:00:00+00:00"}, {"id": "c", "due_at": None}]
    overdue, today = desk.split_tasks(items, now)
    assert [t["id"] for t in overdue] == ["a"] and [t["id"] for t in today] == ["b"]


def test_board_columns_lock_the_erp_stages_and_carry_totals():
    stages = [{"code": "new", "title": "Новый", "manual": True},
              {"code": "qualified", "title": "Квалифицирован", "manual": True},
              {"code": "order_confirmed", "title": "Заказ", "manual": False},
              {"code": "closed_won", "title": "Выиграна", "manual": False},
              {"code": "lost", "title": "Проиграна", "manual": False}]
    columns = funnel.board_columns({"stages": stages}, [
        {"stage": "new", "deals": 3, "amount": "100.00", "stalled": 1}])
    assert [(c["code"], c["locked"], c["count"]) for c in columns] == [
        ("new", False, 3), ("qualified", False, 0), ("order_confirmed", True, 0)]
    assert columns[0]["amount"] == "100.00" and columns[0]["stalled"] == 1


def test_board_scope_by_role():
    assert funnel.board_scope({"scope": "department", "manager": "x"}, MANAGER) == (
        "mine", {"owner_id": MANAGER.user_id}, None)
    assert funnel.board_scope({}, HEAD) == (
        "department", {"department_id": HEAD.department_id}, None)
    assert funnel.board_scope({"manager": MANAGER.user_id}, HEAD) == (
        "manager", {"owner_id": MANAGER.user_id}, MANAGER.user_id)


def test_calendar_navigation_and_grids():
    assert calendar.shift("day", date(2026, 12, 31), 1) == date(2027, 1, 1)
    assert calendar.shift("week", date(2026, 11, 27), -1) == date(2026, 11, 20)
    assert calendar.shift("month", date(2026, 12, 15), 1) == date(2027, 1, 1)
    assert calendar.shift("month", date(2026, 1, 15), -1) == date(2025, 12, 1)
    days = [{"date": f"2026-12-{d:02d}", "items": [], "working": True} for d in range(1, 32)]
    weeks = calendar.month_weeks(days)
    assert weeks[0][0] is None and weeks[0][1]["date"] == "2026-12-01"  # a Tuesday
    assert all(len(w) == 7 for w in weeks) and len(weeks) == 5
    item = {"starts_at": None, "due_at": "2026-12-01T07:30:00+00:00"}       # 10:30 in Moscow
    assert calendar.item_hour(item) == 10
    assert calendar.item_hour({"due_at": "2026-12-01T01:00:00+00:00"}) == calendar.FIRST_HOUR
    grid = calendar.hour_grid([{"date": "2026-12-01", "items": [item]}])
    assert [len(r["cells"][0]) for r in grid if r["hour"] == 10] == [1]


def _request(path="/"):
    return Request(EnvironBuilder(path=path, headers={"Accept-Language": "ru"}).get_environ())


def _session(identity=MANAGER):
    return PageSession(identity, "token", "csrf")


def test_the_card_and_board_templates_render_service_answers():
    client = {"id": "c1", "short_name": "ООО «Кровля»", "inn": "7707083893", "kpp": None,
              "ogrn": None, "addresses": [], "phones": ["+73431234567"], "emails": [],
              "region": "RU-SVE", "owner_name": "Иванов Иван", "department_name": "Урал",
              "segment": None, "status": "active", "contacts": [], "read_only": False}
    timeline = {"items": [
        {"id": 2, "at": "2026-11-27T09:00:00+00:00", "kind": "call", "ref": "r", "deal_id": None,
         "deal_title": None, "data": {"call_id": "k1", "direction": "inbound",
                                      "status": "answered", "talk_seconds": 185,
                                      "has_recording": True, "external_number": "+7343"}},
        {"id": 1, "at": "2026-11-27T08:00:00+00:00", "kind": "erp", "ref": "e",
         "deal_id": "d1", "deal_title": "Кровля склада",
         "data": {"kind": "order", "number": "ЗК-1", "amount": "250000.00",
                  "state": "posted"}}], "next_cursor": "abc"}
    html = page_render(_request(), "app/manager/client_card.html", _session(),
                       client=client, timeline=timeline, timeline_error=None, kinds=[],
                       kind_choices=clients_pages.TIMELINE_KINDS, deals=[], tasks=[]
                       ).get_data(as_text=True)
    assert 'src="/calls/k1/recording"' in html and "3:05" in html
    assert "ЗК-1" in html and "250\u00a0000,00\u00a0₽" in html
    assert "/clients/c1/timeline?cursor=abc" in html
    columns = funnel.board_columns({"stages": [
        {"code": "new", "title": "Новый", "manual": True},
        {"code": "invoiced", "title": "Счёт", "manual": False}]}, [])
    columns[0]["cards"] = [{"id": "d1", "title": "Сделка", "client_id": None, "client_name": None,
                            "lead": {}, "pipeline_amount": "10.00", "version": 3,
                            "stalled": True, "stage_entered_at": None, "owner_name": "И"}]
    columns[0]["count"] = 1
    board = page_render(_request(), "app/manager/funnel.html", _session(), columns=columns,
                        funnel={"id": "f", "name": "Основная"}, funnels=[{}], scope="mine",
                        manager=None, managers=[], is_head=False,
                        more_limit=30).get_data(as_text=True)
    assert 'data-stage="invoiced" data-locked="true"' in board
    assert 'draggable="true"' in board and 'data-version="3"' in board
    assert "завис" in board


def test_plan_and_fact_figures_read_like_numbers_not_decimals():
    from decimal import Decimal

    from gateway.ui.manager_common import NBSP, number

    assert number(Decimal("1100000.00")) == f"1{NBSP}100{NBSP}000"
    assert number("18.500") == "18,5"
    assert number(Decimal("-1234.5")) == f"-1{NBSP}234,5"
    assert number("0.00") == "0"
    assert number(None) == "—"

"""The sales head's and admin's page helpers: what a report page passes on to the reports
service, how a hand-over splits, and how the admin's forms become the services' data."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from crm_platform.errors import ValidationFailed
from gateway.ui.admin import scheme_form, stages_form, user_form
from gateway.ui.head import (
    cell,
    field_errors,
    month_start,
    period_label,
    report_params,
    row_label,
    split_counts,
)


def test_field_errors_are_flattened_to_the_apis_dotted_names():
    # Through RPC the fields travel as JSON: integer keys come back as text.
    exc = ValidationFailed("нет", fields={"bonus": {"tiers": {"0": {"rate": ["от 0 до 100"]}}},
                                          "extension": ["2–6 цифр", "только цифры"],
                                          "stages.1.limit": ["> 0"]})
    assert field_errors(exc) == {"bonus.tiers.0.rate": "от 0 до 100",
                                 "extension": "2–6 цифр; только цифры",
                                 "stages.1.limit": "> 0"}


def test_report_params_pass_only_known_non_empty_filters():
    args = MultiDict({"period": "month", "date": "2026-10-15", "manager_id": "",
                      "group_by": " week ", "evil": "1", "format": "csv"})
    assert report_params(args) == {"period": "month", "date": "2026-10-15", "group_by": "week"}


def test_report_cells_and_chart_labels():
    kinds = {"calls": "int", "amount": "money", "from_first": "ratio"}
    row = {"period_start": "2026-10-05", "manager": "Иванов Иван", "calls": 1234,
           "amount": "1500.5", "from_first": 0.25, "stage": "invoiced"}
    assert cell(row, "period_start", kinds, "day") == "05.10.2026"
    assert cell(row, "period_start", kinds, "month") == "10.2026"
    assert cell(row, "calls", kinds, None) == "1 234"
    assert cell(row, "amount", kinds, None) == "1 500,50 ₽"
    assert cell(row, "from_first", kinds, None) == "25,0 %"
    assert cell(row, "stage", kinds, None) == "Счёт выставлен"
    assert cell({"manager": None}, "manager", kinds, None) == "—"
    assert row_label(row, ["period_start", "manager"], "week") == "05.10 · Иванов Иван"
    assert period_label("2026-11-01", "quarter") == "IV кв. 2026"


def test_a_handover_splits_round_robin_like_the_clients_service():
    assert split_counts(5, ["a", "b"]) == {"a": 3, "b": 2}
    assert split_counts(1, ["a", "b", "c"]) == {"a": 1, "b": 0, "c": 0}
    assert split_counts(6, ["a", "b", "c"]) == {"a": 2, "b": 2, "c": 2}
    assert split_counts(3, []) == {}


def test_month_picker_falls_back_to_this_month():
    assert month_start("2026-10").isoformat() == "2026-10-01"
    assert month_start("2026-10-17").isoformat() == "2026-10-01"
    assert month_start("garbage").day == 1


def test_user_form_sends_nulls_for_empty_optional_fields():
    form = MultiDict({"username": " new.user ", "full_name": "Новый Сотрудник",
                      "role": "manager", "department_id": "", "extension": "105",
                      "email": "", "password": "", "active": "1"})
    assert user_form(form, creating=True) == {
        "username": "new.user", "full_name": "Новый Сотрудник", "role": "manager",
        "department_id": None, "email": None, "extension": "105", "mailbox": None,
        "active": True}
    edited = user_form(MultiDict({"full_name": "X Y", "role": "sales_head"}), creating=False)
    assert "username" not in edited and edited["active"] is False


def test_stages_form_keeps_task_templates_and_drops_cleared_rows():
    current = [{"code": "new", "title": "Новый интерес", "probability": 10, "manual": True,
                "limit": {"amount": 2, "unit": "days"}, "limit_mode": "fixed",
                "tasks": [{"title": "Позвонить", "due": {"amount": 1, "unit": "hours"}}],
                "learned": None, "limit_in_use": "fixed"},
               {"code": "proposal", "title": "КП", "probability": 30, "manual": True,
                "limit": None, "limit_mode": "fixed", "tasks": []}]
    form = MultiDict({"rows": "3", "code_0": "new", "title_0": "Новый", "probability_0": "15",
                      "limit_0": "3,5", "unit_0": "working_days", "mode_0": "learned",
                      "code_1": "", "title_1": "КП",
                      "code_2": "meeting", "title_2": "Встреча", "probability_2": "40",
                      "limit_2": "", "unit_2": "days"})
    stages = stages_form(form, current)
    assert stages == [
        {"code": "new", "title": "Новый", "probability": 15,
         "limit": {"amount": 3.5, "unit": "working_days"}, "limit_mode": "learned",
         "tasks": [{"title": "Позвонить", "due": {"amount": 1, "unit": "hours"}}]},
        {"code": "meeting", "tasks": [], "title": "Встреча", "probability": 40, "limit": None,
         "limit_mode": "fixed"}]


def test_scheme_form_leaves_out_empty_rows():
    form = MultiDict({"position": "manager", "name": "Менеджер", "valid_from": "2026-12",
                      "fixed": "40 000,50", "pct_kpi_0": "payments", "pct_rate_0": "1,5",
                      "pct_kpi_1": "sales", "pct_rate_1": "", "bonus_kpi": "sales",
                      "tier_from_0": "80", "tier_rate_0": "1", "tier_from_1": "",
                      "tier_rate_1": ""})
    assert scheme_form(form) == {
        "position": "manager", "name": "Менеджер", "valid_from": "2026-12-01",
        "fixed": "40000.50", "percentages": [{"kpi": "payments", "rate": "1.5"}],
        "bonus": {"base_kpi": "sales", "tiers": [{"from_pct": "80", "rate": "1"}]}}


# -- the templates render with the services' shapes --------------------------------------------
def _page(template: str, role: str = "sales_head", lang: str = "ru", **context) -> str:
    from crm_platform.identity import Identity
    from gateway.pages import PageSession, render
    from gateway.ui.admin import ROLE_TITLES, SECTIONS
    from gateway.ui.charts import money, moscow, number
    from gateway.ui.i18n import translator

    session = PageSession(Identity("u1", role, "who", "Кто-то", "d1"), "token", "csrf-value")
    base = {"_": translator(lang), "lang": lang, "languages": ("ru", "en"), "nav": [],
            "active": "", "here": "/", "asset_version": "1", "sections": SECTIONS,
            "role_titles": ROLE_TITLES, "moscow": moscow, "money": money, "num": number,
            "errors": {},
            "form": {}}
    response = render(template, session, **{**base, **context})
    assert response.status_code == 200
    return response.get_data(as_text=True)


DOCUMENT = {"id": "doc1", "user_id": "u2", "full_name": "Иванов Иван", "month": "2026-10-01",
            "state": "confirmed", "stale": False, "total": "40000.00",
            "weighted_fulfilment": "50.00", "computed_at": "2026-11-27T10:00:00+00:00",
            "kpis": [{"title": "Продажи", "plan": "1", "fact": "1", "fulfilment": "100"}],
            "lines": [{"title": "Оклад", "formula": "оклад", "amount": "40000.00",
                       "source_month": None}],
            "comments": [], "confirmed_at": None, "approved_at": None}


def test_the_salary_document_page_offers_the_actions_it_is_given_and_shows_errors():
    from gateway.ui.head import DOCUMENT_STATES

    html = _page("app/head/salary_document.html", document=DOCUMENT, states=DOCUMENT_STATES,
                 actions={"confirm": False, "approve": True, "return": True,
                          "recompute": False},
                 errors={"comment": "обязательно"}, comment="")
    assert 'id="doc-approve"' in html and 'id="doc-return"' in html
    assert 'id="doc-confirm"' not in html and 'id="doc-recompute"' not in html
    assert 'data-field="comment">обязательно<' in html
    assert "40 000,00 ₽" in html and 'name="csrf_token" value="csrf-value"' in html
    assert "выполнение: 50 %" in html and "50.00" not in html   # a plain figure, not "50.00"


def test_admin_forms_show_the_services_field_errors_and_keep_what_was_typed():
    form = MultiDict({"username": "x", "full_name": "Новиков Николай", "extension": "12a"})
    html = _page("app/admin/users.html", role="admin", users=[], departments=[],
                 department_names={}, filters=MultiDict(), section="users", form=form,
                 errors={"extension": "2–6 цифр внутреннего номера"})
    assert 'data-field="extension">2–6 цифр внутреннего номера<' in html
    assert 'value="Новиков Николай"' in html and 'value="12a"' in html


def test_admin_pages_render_in_english():
    from gateway.ui.admin import TIME_UNITS

    funnel = {"id": "f1", "name": "Основная", "is_default": True, "version": 3, "stages": [
        {"code": "new", "title": "Новый", "probability": 10, "manual": True,
         "limit": {"amount": 2, "unit": "days"}, "limit_mode": "fixed", "learned": None,
         "tasks": [{"title": "Позвонить", "due": {"amount": 1, "unit": "hours"},
                    "assignee": "owner"}]},
        {"code": "invoiced", "title": "Счёт выставлен", "probability": 60, "manual": False,
         "limit": None, "limit_mode": "learned", "learned": 12.5, "tasks": []}]}
    html = _page("app/admin/funnels.html", role="admin", lang="en", funnels=[funnel],
                 funnel=funnel, units=TIME_UNITS, section="funnels",
                 errors={"stages.0.probability": "целое от 0 до 100"})
    assert "Save funnel" in html and 'name="code_2"' in html       # the row for a new stage
    assert 'data-field="stages.0.probability">целое от 0 до 100<' in html
    quarantine = _page("app/admin/quarantine.html", role="admin", lang="en", shown="open",
                       section="quarantine", entries=[{
                           "id": 5, "received_at": "2026-11-27T10:00:00+00:00",
                           "transport": "http", "filename": "f.xml", "sender": None,
                           "message_no": None, "reason": "не XML", "field": None, "size": 10}])
    assert "27.11.2026 13:00" in quarantine and 'class="redrive"' in quarantine

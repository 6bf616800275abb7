"""The calendar (``/calendar?view=day|week|month&date=YYYY-MM-DD&user=<id>|department=<id>``):
tasks, calls to make and meetings of a manager or a whole department, laid out by hour (day,
week) or by day (month). A mixin of ``GatewayService``; the deals service's ``calendar`` RPC
decides who may see whose."""

from __future__ import annotations

from datetime import date, timedelta

from ..pages import page
from .manager_common import HEADS_HERE, MOSCOW, WORKERS, moment, page_render, today_msk, with_query

VIEWS = (("day", "День"), ("week", "Неделя"), ("month", "Месяц"))
FIRST_HOUR, LAST_HOUR = 8, 20   # hour rows shown; earlier/later items go to the edge rows
WEEKDAYS = ("Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс")
MONTHS = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь",
          "октябрь", "ноябрь", "декабрь")


def shift(view: str, day: date, step: int) -> date:
    """The anchor of the previous (-1) or next (+1) day, week or month."""
    if view == "day":
        return day + timedelta(days=step)
    if view == "week":
        return day + timedelta(days=7 * step)
    month = day.month - 1 + step
    year = day.year + month // 12
    return date(year, month % 12 + 1, 1)


def item_hour(item: dict) -> int:
    start = moment(item.get("starts_at") or item.get("due_at"))
    hour = start.astimezone(MOSCOW).hour if start else FIRST_HOUR
    return min(max(hour, FIRST_HOUR), LAST_HOUR)


def hour_grid(days: list[dict]) -> list[dict]:
    """Day/week views: one row per hour, one cell per day, the items starting in that hour."""
    rows = []
    for hour in range(FIRST_HOUR, LAST_HOUR + 1):
        rows.append({"hour": hour, "cells": [
            [i for i in d["items"] if item_hour(i) == hour] for d in days]})
    return rows


def month_weeks(days: list[dict]) -> list[list[dict | None]]:
    """Month view: weeks Monday to Sunday, blank cells before the 1st and after the last day."""
    if not days:
        return []
    first = date.fromisoformat(days[0]["date"])
    cells: list[dict | None] = [None] * first.weekday() + list(days)
    cells += [None] * (-len(cells) % 7)
    return [cells[i:i + 7] for i in range(0, len(cells), 7)]


def item_link(item: dict) -> str | None:
    if item.get("client_id"):
        return f"/clients/{item['client_id']}"
    if item.get("deal_id"):
        return with_query("/funnel", view="list")
    return None


class CalendarPages:
    @page("GET", "/calendar", roles=WORKERS)
    def calendar_page(self, request, session):
        identity = session.identity
        args = request.args
        view = args.get("view") if args.get("view") in dict(VIEWS) else "week"
        try:
            anchor = date.fromisoformat(args.get("date", ""))
        except ValueError:
            anchor = today_msk()
        user = args.get("user") or None
        department = args.get("department") or None
        if identity.role not in HEADS_HERE:
            user, department = None, None
        calendar = self.services("deals").calendar(
            view, anchor.isoformat(), user_id=None if department else user,
            department_id=department)
        for day in calendar["days"]:
            parsed = date.fromisoformat(day["date"])
            day["weekday"] = WEEKDAYS[parsed.weekday()]
            day["label"] = parsed.strftime("%d.%m")
            day["today"] = parsed == today_msk()
            for item in day["items"]:
                item["link"] = item_link(item)
                item["hour"] = item_hour(item)
        people = []
        if identity.role in HEADS_HERE:
            people = self.directory.list_users(
                department_id=identity.department_id if identity.role == "sales_head" else None,
                role="manager")
        keep = {"user": user, "department": department}
        title = {"day": anchor.strftime("%d.%m.%Y"),
                 "week": f"{calendar['from'][8:10]}.{calendar['from'][5:7]} – "
                         f"{calendar['to'][8:10]}.{calendar['to'][5:7]}.{calendar['to'][:4]}",
                 "month": f"{MONTHS[anchor.month - 1]} {anchor.year}"}[view]
        return page_render(
            request, "app/manager/calendar.html", session, active="calendar", view=view,
            views=VIEWS, calendar=calendar, title=title, anchor=anchor,
            hours=hour_grid(calendar["days"]) if view != "month" else [],
            weeks=month_weeks(calendar["days"]) if view == "month" else [],
            weekdays=WEEKDAYS, people=people, user=user, department=department,
            is_head=identity.role in HEADS_HERE,
            prev_link=with_query("/calendar", view=view, date=shift(view, anchor, -1), **keep),
            next_link=with_query("/calendar", view=view, date=shift(view, anchor, 1), **keep),
            today_link=with_query("/calendar", view=view, **keep),
            view_link=lambda v: with_query("/calendar", view=v, date=anchor, **keep))

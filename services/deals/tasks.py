"""Tasks, meetings and calls to make; the calendar per manager and department; notifications."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crm_platform.idempotency import idempotent
from crm_platform.paging import keyset_page
from crm_platform.rpc import rpc

from . import client_timeline, moves, store
from .domain.deal_input import parse_uuid
from .domain.funnel import TASK_KINDS
from .models import deals, notifications, tasks

VIEWS = ("day", "week", "month")


def _aware(value, field: str, errors: dict) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        errors[field] = ["дата и время ISO 8601 с часовым поясом"]
        return None
    if moment.tzinfo is None:
        errors[field] = ["укажите часовой пояс, например 2026-12-01T10:00:00+03:00"]
        return None
    return moment


def notification_dict(r) -> dict:
    return {"id": r["id"], "kind": r["kind"], "text": r["text"],
            "deal_id": str(r["deal_id"]) if r["deal_id"] else None,
            "task_id": str(r["task_id"]) if r["task_id"] else None,
            "client_id": str(r["client_id"]) if r["client_id"] else None,
            "created_at": r["created_at"].isoformat(),
            "read": r["read_at"] is not None}


def task_dict(row, names: dict | None = None) -> dict:
    names = names or {}
    iso = (lambda v: v.isoformat() if v else None)  # noqa: E731
    return {
        "id": str(row["id"]), "deal_id": str(row["deal_id"]) if row["deal_id"] else None,
        "client_id": str(row["client_id"]) if row["client_id"] else None,
        "assignee_id": str(row["assignee_id"]) if row["assignee_id"] else None,
        "assignee_name": names.get(row["assignee_id"]),
        "department_id": str(row["department_id"]) if row["department_id"] else None,
        "kind": row["kind"], "title": row["title"], "description": row["description"],
        "due_at": iso(row["due_at"]), "starts_at": iso(row["starts_at"]),
        "ends_at": iso(row["ends_at"]), "location": row["location"], "status": row["status"],
        "source": row["source"], "stage": row["stage"],
        "external_number": row["external_number"], "result": row["result"],
        "overdue": row["status"] == "open" and row["due_at"] is not None
        and row["due_at"] < utcnow(),
        "created_at": iso(row["created_at"]), "completed_at": iso(row["completed_at"]),
        "version": row["version"],
    }


class TaskEntrypoints:
    # -- creating and changing ------------------------------------------------------------------
    @rpc
    @idempotent
    def create_task(self, data: dict) -> dict:
        """A task, a call to make or a meeting, for oneself or (a sales head) for a manager of
        the department; on a deal or a client, or on its own. Meetings have ``starts_at`` and
        ``ends_at`` (the due time is the start)."""
        identity = self.caller.require("manager", "sales_head", "integration")
        fields = self._task_fields(data, partial=False)
        now = utcnow()
        with self.db.session() as session:
            deal = None
            deal_id = parse_uuid(data.get("deal_id"), "deal_id")
            if deal_id is not None:
                deal = self._visible_deal(session, identity, deal_id)
            client_id = deal["client_id"] if deal else parse_uuid(data.get("client_id"),
                                                                  "client_id")
            if deal is None and client_id is not None and identity.role != "integration":
                # A task names a client only the caller may see: it shows on that client's card.
                client_id = self._timeline_client(session, identity, client_id)["client_id"]
            assignee = store.assignable_owner(
                session, identity, parse_uuid(data.get("assignee_id"), "assignee_id")) \
                if identity.role != "integration" or data.get("assignee_id") else None
            person = store.person(session, assignee)
            task = moves.create_task(
                session, self.outbox, at=now, created_by=identity.user_id,
                deal_id=deal["id"] if deal else None,
                client_id=client_id,
                assignee_id=assignee,
                department_id=person["department_id"] if person else parse_uuid(
                    data.get("department_id"), "department_id"),
                source="manual", **fields)
            if assignee is not None and str(assignee) != identity.user_id:
                store.notify(session, assignee, "task_assigned",
                             f"Новая задача: {task['title']}", now, task_id=task["id"],
                             deal_id=task["deal_id"], client_id=task["client_id"])
            return task_dict(task, store.names_of(session, [assignee]))

    def _task_fields(self, data: dict, *, partial: bool) -> dict:
        errors: dict[str, list[str]] = {}
        out: dict = {}
        if "kind" in data or not partial:
            kind = data.get("kind") or "task"
            if kind not in TASK_KINDS:
                errors["kind"] = [", ".join(TASK_KINDS)]
            out["kind"] = kind
        if "title" in data or not partial:
            title = str(data.get("title") or "").strip()
            if not title or len(title) > 500:
                errors["title"] = ["от 1 до 500 символов"]
            out["title"] = title
        if "description" in data:
            description = str(data.get("description") or "")
            if len(description) > 20000:
                errors["description"] = ["не длиннее 20000 символов"]
            out["description"] = description
        if "location" in data:
            out["location"] = (str(data.get("location") or "").strip() or None)
        for key in ("due_at", "starts_at", "ends_at"):
            if key in data:
                out[key] = _aware(data.get(key), key, errors)
        kind = out.get("kind")
        if kind == "meeting" and not partial:
            if out.get("starts_at") is None:
                errors.setdefault("starts_at", ["у встречи есть начало"])
            if out.get("ends_at") is None and out.get("starts_at") is not None:
                out["ends_at"] = out["starts_at"] + timedelta(hours=1)
        if out.get("starts_at") and out.get("ends_at") and out["ends_at"] <= out["starts_at"]:
            errors["ends_at"] = ["конец встречи позже начала"]
        if out.get("starts_at") and "due_at" not in data:
            out["due_at"] = out["starts_at"]
        if not partial and out.get("due_at") is None and kind != "meeting":
            errors.setdefault("due_at", ["срок задачи обязателен"])
        if errors:
            raise ValidationFailed("Задача не принята: проверьте поля", fields=errors)
        return out

    def _task_for_change(self, session, identity, task_id):
        row = session.execute(sa.select(tasks).where(
            tasks.c.id == parse_uuid(task_id, "task_id")).with_for_update()).mappings().first()
        if row is None or not self._may_see_task(identity, row):
            raise NotFound("Задача не найдена", fields={"task_id": ["нет такой задачи"]})
        return row

    @staticmethod
    def _may_see_task(identity, row) -> bool:
        if identity.role in ("director", "admin", "integration"):
            return True
        if identity.role == "sales_head":
            return str(row["department_id"]) == str(identity.department_id)
        if row["assignee_id"] is None:       # the department's queue
            return str(row["department_id"]) == str(identity.department_id)
        return str(row["assignee_id"]) == identity.user_id

    @rpc
    def get_task(self, task_id: str) -> dict:
        identity = self.caller.require()
        with self.db.session() as session:
            row = session.execute(sa.select(tasks).where(
                tasks.c.id == parse_uuid(task_id, "task_id"))).mappings().first()
            if row is None or not self._may_see_task(identity, row):
                raise NotFound("Задача не найдена", fields={"task_id": ["нет такой задачи"]})
            return task_dict(row, store.names_of(session, [row["assignee_id"]]))

    @rpc
    def update_task(self, task_id: str, changes: dict,
                    expected_version: int | None = None) -> dict:
        """Change the title, description, due time, meeting times or place; a sales head may
        also give the task to another manager (``assignee_id``)."""
        identity = self.caller.require("manager", "sales_head", "integration")
        fields = self._task_fields(changes, partial=True)
        now = utcnow()
        with self.db.session() as session:
            row = self._task_for_change(session, identity, task_id)
            if row["status"] != "open":
                raise Conflict("Задача уже закрыта", code="task_closed")
            if expected_version is not None and int(expected_version) != row["version"]:
                raise Conflict("Задачу изменили: обновите её", code="stale_version",
                               extra={"current_version": row["version"]})
            if "assignee_id" in changes:
                assignee = store.assignable_owner(session, identity,
                                                  parse_uuid(changes["assignee_id"],
                                                             "assignee_id"))
                fields["assignee_id"] = assignee
                fields["department_id"] = store.person(session, assignee)["department_id"]
            if fields.get("due_at") and fields["due_at"] > now:
                fields["overdue_at"] = None        # moved to the future: may be overdue again
            values = {**fields, "version": row["version"] + 1}
            session.execute(sa.update(tasks).where(tasks.c.id == row["id"]).values(**values))
            row = {**row, **values}
            if row["deal_id"]:
                store.add_to_timeline(session, row["deal_id"], row["created_at"], "task",
                                      str(row["id"]), moves.task_timeline_data(row))
            client_timeline.record(session, [client_timeline.task_entry(
                row, moves.task_timeline_data(row))])
            return task_dict(row, store.names_of(session, [row["assignee_id"]]))

    @rpc
    def complete_task(self, task_id: str, status: str = "done", result: str | None = None) -> dict:
        """Close a task as ``done`` (with what came of it) or ``cancelled``."""
        identity = self.caller.require("manager", "sales_head", "integration")
        if status not in ("done", "cancelled"):
            raise ValidationFailed("Неизвестный итог", fields={"status": ["done или cancelled"]})
        now = utcnow()
        with self.db.session() as session:
            row = self._task_for_change(session, identity, task_id)
            if row["status"] != "open":
                raise Conflict("Задача уже закрыта", code="task_closed")
            row = moves.close_task(session, self.outbox, row, status, by=identity.user_id,
                                   at=now, result=(result or "").strip() or None)
            if status == "done":
                self._touch_client(session, row["client_id"], now)
            return task_dict(row, store.names_of(session, [row["assignee_id"]]))

    @rpc
    def take_task(self, task_id: str) -> dict:
        """A manager takes a task from the department's queue (a call-back to an unknown number,
        a pool client's reminder). Two at once: one gets it, the other 409."""
        identity = self.caller.require("manager", "sales_head")
        with self.db.session() as session:
            row = session.execute(sa.select(tasks).where(
                tasks.c.id == parse_uuid(task_id, "task_id")).with_for_update()
            ).mappings().first()
            if row is None or str(row["department_id"]) != str(identity.department_id):
                raise NotFound("Задача не найдена", fields={"task_id": ["нет такой задачи"]})
            if row["assignee_id"] is not None or row["status"] != "open":
                raise Conflict("Задачу уже взял другой сотрудник", code="already_taken")
            values = {"assignee_id": uuid.UUID(identity.user_id), "version": row["version"] + 1}
            session.execute(sa.update(tasks).where(tasks.c.id == row["id"]).values(**values))
            row = {**row, **values}
            client_timeline.record(session, [client_timeline.task_entry(
                row, moves.task_timeline_data(row))])
            return task_dict(row, store.names_of(session, [values["assignee_id"]]))

    # -- lists and the calendar -------------------------------------------------------------------
    @rpc
    def list_tasks(self, filters: dict | None = None, limit: int = 100,
                   cursor: str | None = None) -> dict:
        """Tasks the caller may see, by due time (soonest first). Filters: assignee_id,
        department_id, status (open/done/cancelled), overdue, deal_id, client_id, kind,
        due_from, due_to, queue (the department's unassigned tasks); ``sort``."""
        identity = self.caller.require()
        filters = filters or {}
        limit = max(1, min(int(limit), 500))
        now = utcnow()
        query = sa.select(tasks)
        if identity.role == "manager":
            query = query.where(sa.or_(
                tasks.c.assignee_id == identity.user_id,
                sa.and_(tasks.c.assignee_id.is_(None),
                        tasks.c.department_id == identity.department_id)))
        elif identity.role == "sales_head":
            query = query.where(tasks.c.department_id == identity.department_id)
        for key in ("assignee_id", "department_id", "deal_id", "client_id"):
            if filters.get(key):
                query = query.where(getattr(tasks.c, key) == parse_uuid(filters[key], key))
        if filters.get("queue"):
            query = query.where(tasks.c.assignee_id.is_(None))
        if filters.get("status"):
            query = query.where(tasks.c.status == filters["status"])
        if filters.get("kind"):
            query = query.where(tasks.c.kind == filters["kind"])
        if filters.get("overdue") is not None:
            overdue = sa.and_(tasks.c.status == "open", tasks.c.due_at < now)
            query = query.where(overdue if filters["overdue"] else sa.not_(overdue))
        errors: dict = {}
        for key, op in (("due_from", "ge"), ("due_to", "lt")):
            moment = _aware(filters.get(key), key, errors)
            if moment is not None:
                query = query.where(tasks.c.due_at >= moment if op == "ge"
                                    else tasks.c.due_at < moment)
        if errors:
            raise ValidationFailed("Фильтр не принят", fields=errors)
        due_key = sa.func.coalesce(tasks.c.due_at, datetime(9999, 1, 1, tzinfo=now.tzinfo))
        # ``sort``: due (soonest first, the default), created; ``-`` for descending. The default
        # keeps its old cursor form; other sorts name themselves in the cursor, so a cursor of
        # one sort is refused in another.
        spec = str(filters.get("sort") or "due")
        descending = spec.startswith("-")
        key = {"due": due_key, "created": tasks.c.created_at}.get(spec.lstrip("-"))
        if key is None:
            raise ValidationFailed("Сортировка по этому полю недоступна", fields={
                "sort": ["одно из: due, created (с «-» — по убыванию)"]})
        prefix = "" if spec == "due" else f"{spec}|"
        after = store.decode_cursor(cursor, 2)
        with self.db.session() as session:
            if after is not None:
                try:
                    if not after[0].startswith(prefix) or (not prefix and "|" in after[0]):
                        raise ValueError
                    position = (datetime.fromisoformat(after[0][len(prefix):]),
                                uuid.UUID(after[1]))
                except ValueError:
                    raise ValidationFailed("Курсор не распознан", fields={
                        "cursor": ["передайте next_cursor"]}) from None
                row_key = sa.tuple_(key, tasks.c.id)
                bound = sa.tuple_(sa.literal(position[0], tasks.c.due_at.type),
                                  sa.literal(position[1], tasks.c.id.type))
                query = query.where(row_key < bound if descending else row_key > bound)
            order = (key.desc(), tasks.c.id.desc()) if descending else (key, tasks.c.id)
            rows = session.execute(query.add_columns(key.label("page_key")).order_by(
                *order).limit(limit + 1)).mappings().all()
            page = rows[:limit]
            names = store.names_of(session, [r["assignee_id"] for r in page])
            return {"items": [task_dict(r, names) for r in page],
                    "next_cursor": store.encode_cursor(
                        prefix + page[-1]["page_key"].isoformat(), page[-1]["id"])
                    if len(rows) > limit else None}

    @rpc
    def calendar(self, view: str = "week", day: str | None = None, user_id: str | None = None,
                 department_id: str | None = None) -> dict:
        """Tasks and meetings of one manager (default: the caller) or a whole department, for the
        day, week (Mon–Sun) or month around ``day``, grouped by day in the business time zone,
        each day marked working or not by the production calendar."""
        identity = self.caller.require()
        if view not in VIEWS:
            raise ValidationFailed("Неизвестный вид календаря", fields={"view": list(VIEWS)})
        with self.db.session() as session:
            calendar = store.work_calendar(session)
            tz = calendar.tz
            try:
                anchor = date.fromisoformat(day) if day else utcnow().astimezone(tz).date()
            except ValueError:
                raise ValidationFailed("Дата не распознана", fields={"day": ["ГГГГ-ММ-ДД"]}) \
                    from None
            first, last = self._calendar_span(view, anchor)
            start = datetime.combine(first, time(0), tz)
            end = datetime.combine(last + timedelta(days=1), time(0), tz)
            query = sa.select(tasks).where(
                tasks.c.status != "cancelled",
                sa.func.coalesce(tasks.c.starts_at, tasks.c.due_at) >= start,
                sa.func.coalesce(tasks.c.starts_at, tasks.c.due_at) < end)
            dept = parse_uuid(department_id, "department_id")
            if dept is not None:
                if identity.role == "manager" or (identity.role == "sales_head" and
                                                  str(dept) != identity.department_id):
                    raise Forbidden("Календарь отдела видит его руководитель")
                query = query.where(tasks.c.department_id == dept)
            else:
                who = parse_uuid(user_id, "user_id") or uuid.UUID(identity.user_id)
                if str(who) != identity.user_id:
                    target = store.person(session, who)
                    if identity.role == "manager" or target is None or (
                            identity.role == "sales_head"
                            and str(target["department_id"]) != identity.department_id):
                        raise Forbidden("Чужой календарь видит руководитель отдела")
                query = query.where(tasks.c.assignee_id == who)
            rows = session.execute(query.order_by(
                sa.func.coalesce(tasks.c.starts_at, tasks.c.due_at))).mappings().all()
            names = store.names_of(session, [r["assignee_id"] for r in rows])
            days = []
            current = first
            by_day: dict = {}
            for r in rows:
                local = (r["starts_at"] or r["due_at"]).astimezone(tz).date()
                by_day.setdefault(local, []).append(task_dict(r, names))
            while current <= last:
                days.append({"date": current.isoformat(),
                             "working": calendar.is_working_day(current),
                             "items": by_day.get(current, [])})
                current += timedelta(days=1)
            return {"view": view, "from": first.isoformat(), "to": last.isoformat(),
                    "timezone": str(tz), "days": days}

    @staticmethod
    def _calendar_span(view: str, anchor: date) -> tuple[date, date]:
        if view == "day":
            return anchor, anchor
        if view == "week":
            first = anchor - timedelta(days=anchor.weekday())
            return first, first + timedelta(days=6)
        first = anchor.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following - timedelta(days=1)

    # -- notifications ----------------------------------------------------------------------------
    @rpc
    def list_notifications(self, unread_only: bool = False, limit: int = 50) -> list[dict]:
        """The caller's notifications, newest first: deals routed or handed over, stalled deals
        and overdue tasks of the department (for the sales head), tasks given by the head."""
        identity = self.caller.require()
        with self.db.session() as session:
            query = sa.select(notifications).where(notifications.c.user_id == identity.user_id)
            if unread_only:
                query = query.where(notifications.c.read_at.is_(None))
            rows = session.execute(query.order_by(notifications.c.id.desc()).limit(
                max(1, min(int(limit), 500)))).mappings()
            return [notification_dict(r) for r in rows]

    @rpc
    def page_notifications(self, unread_only: bool = False, limit: int = 50,
                           cursor: str | None = None) -> dict:
        """``list_notifications`` in cursor pages, newest first: ``{"items", "next_cursor"}``."""
        identity = self.caller.require()
        query = sa.select(notifications).where(notifications.c.user_id == identity.user_id)
        if unread_only:
            query = query.where(notifications.c.read_at.is_(None))
        with self.db.session() as session:
            rows, next_cursor = keyset_page(
                session, query, sort="-id", default="-id", sorts={"id": notifications.c.id},
                id_column=notifications.c.id, cursor=cursor, limit=max(1, min(int(limit), 500)))
        return {"items": [notification_dict(r) for r in rows], "next_cursor": next_cursor}

    @rpc
    def mark_notifications_read(self, ids: list[int] | None = None) -> int:
        """Mark the given notifications (or all) of the caller as read; returns how many."""
        identity = self.caller.require()
        with self.db.session() as session:
            query = sa.update(notifications).where(
                notifications.c.user_id == identity.user_id, notifications.c.read_at.is_(None))
            if ids is not None:
                query = query.where(notifications.c.id.in_([int(i) for i in ids]))
            return session.execute(query.values(read_at=utcnow())).rowcount or 0

    def _open_deals_of_client(self, session, client_id) -> list:
        if client_id is None:
            return []
        return [r for (r,) in session.execute(sa.select(deals.c.id).where(
            deals.c.client_id == client_id, deals.c.closed_at.is_(None)))]

"""Task routes of the gateway (/api/v1/tasks, the calendar, notifications) and the deals service's
operations (run the scans, learn the limits now): a mixin of ``GatewayService``.

The deals service decides who sees whose tasks (a manager the own and the department's queue, a
sales head the department), who may give a task to whom (403), and the calendar of a department is
the sales head's (403 otherwise).
"""

from __future__ import annotations

from ..api import ApiRpcProxy, api
from ..schemas import page_of
from ..schemas_deals import (
    CalendarQuery,
    CalendarSchema,
    DealLearnResultSchema,
    DealScanResultSchema,
    NotificationListQuery,
    NotificationSchema,
    NotificationsReadResultSchema,
    NotificationsReadSchema,
    TaskCompleteSchema,
    TaskCreateSchema,
    TaskListQuery,
    TaskPageSchema,
    TaskSchema,
    TaskUpdateSchema,
)
from .deals import to_rpc, versioned_response

TAGS = ["tasks"]
FUNNEL_TAGS = ["funnels"]


def task_response(task: dict, status: int = 200):
    return versioned_response(TaskSchema, task, status)


class DealTaskRoutes:
    deals_tasks_rpc = ApiRpcProxy("deals")

    # -- tasks ----------------------------------------------------------------------------------
    @api("POST", "/api/v1/tasks", body=TaskCreateSchema, response=TaskSchema, status=201,
         idempotent=True, summary="Создать задачу, звонок или встречу", tags=TAGS)
    def create_task(self, request, body):
        """For oneself or (a sales head) for a manager of the department; on a deal, a client or
        on its own. A meeting has ``starts_at`` (and ``ends_at``, by default an hour later);
        other tasks need ``due_at``. Times need their zone."""
        return task_response(self.deals_tasks_rpc.create_task(to_rpc(body)), 201)

    @api("GET", "/api/v1/tasks", query=TaskListQuery, response=TaskPageSchema,
         summary="Задачи (свои, очередь и задачи отдела — по роли), постранично", tags=TAGS)
    def list_tasks(self, request, query):
        """Soonest due first unless ``sort`` (due, created; ``-`` for descending); pass
        ``next_cursor`` for the next page."""
        filters = to_rpc({k: v for k, v in query.items() if k not in ("limit", "cursor")})
        return self.deals_tasks_rpc.list_tasks(filters, limit=query["limit"],
                                               cursor=query.get("cursor"))

    @api("GET", "/api/v1/tasks/<uuid:task_id>", response=TaskSchema, etag=True, summary="Задача",
         tags=TAGS)
    def get_task(self, request, task_id):
        """``ETag`` is the task's version."""
        return task_response(self.deals_tasks_rpc.get_task(str(task_id)))

    @api("PATCH", "/api/v1/tasks/<uuid:task_id>", body=TaskUpdateSchema, response=TaskSchema,
         summary="Изменить задачу (срок, время встречи, место; руководитель — исполнителя)",
         versioned=True, tags=TAGS)
    def update_task(self, request, task_id, body, version):
        """Only open tasks. ``If-Match`` (the task's ``ETag``) or ``expected_version`` is
        required (428 without); an edit of a task changed meanwhile is refused: 412
        ``precondition_failed``."""
        changes = to_rpc({k: v for k, v in body.items() if k != "expected_version"})
        return task_response(self.deals_tasks_rpc.update_task(str(task_id), changes,
                                                              expected_version=version))

    @api("POST", "/api/v1/tasks/<uuid:task_id>/complete", body=TaskCompleteSchema,
         response=TaskSchema, summary="Закрыть задачу: выполнена или отменена", tags=TAGS)
    def complete_task(self, request, task_id, body):
        """A closed task cannot be closed again (409 ``task_closed``)."""
        return task_response(self.deals_tasks_rpc.complete_task(
            str(task_id), status=body["status"], result=body.get("result")))

    @api("POST", "/api/v1/tasks/<uuid:task_id>/take", response=TaskSchema,
         summary="Взять задачу из очереди отдела", tags=TAGS)
    def take_task(self, request, task_id):
        """Two at once: exactly one gets it, the other 409 ``already_taken``."""
        return task_response(self.deals_tasks_rpc.take_task(str(task_id)))

    @api("GET", "/api/v1/calendar", query=CalendarQuery, response=CalendarSchema,
         summary="Календарь задач и встреч: день, неделя, месяц", tags=TAGS)
    def calendar(self, request, query):
        """One person's (by default one's own; a sales head may look at a manager of the
        department) or, with ``department_id``, the department's (its sales head). Grouped by day
        in the business time zone; each day marked working or not by the production
        calendar."""
        return self.deals_tasks_rpc.calendar(
            view=query["view"], day=to_rpc(query.get("day")),
            user_id=to_rpc(query.get("user_id")), department_id=to_rpc(query.get("department_id")))

    # -- notifications --------------------------------------------------------------------------
    @api("GET", "/api/v1/notifications", query=NotificationListQuery,
         response=page_of(NotificationSchema), summary="Мои уведомления (постранично)",
         tags=TAGS)
    def list_notifications(self, request, query):
        """Newest first: deals routed or handed over, tasks given, overdue tasks and stalled
        deals (the sales head gets the department's). ``next_cursor`` for the next page."""
        return self.deals_tasks_rpc.page_notifications(unread_only=query["unread_only"],
                                                       limit=query["limit"],
                                                       cursor=query.get("cursor"))

    @api("POST", "/api/v1/notifications/read", body=NotificationsReadSchema,
         response=NotificationsReadResultSchema, summary="Отметить уведомления прочитанными",
         tags=TAGS)
    def mark_notifications_read(self, request, body):
        """The given ones, or without ``ids`` all of one's own; answers how many changed."""
        return {"marked": self.deals_tasks_rpc.mark_notifications_read(body.get("ids"))}

    # -- operations -----------------------------------------------------------------------------
    @api("POST", "/api/v1/admin/deals/scans", response=DealScanResultSchema,
         summary="Запустить проверки сделок сейчас: просрочки, зависшие, забытые клиенты "
                 "(администратор)", tags=TAGS)
    def run_deal_scans(self, request):
        """What the periodic timer does, now: overdue tasks, deals past their stage limit,
        clients with no contact for too long. Answers how many of each reacted."""
        return self.deals_tasks_rpc.run_scans()

    @api("POST", "/api/v1/admin/deals/learn", response=DealLearnResultSchema,
         summary="Пересчитать вычисляемые лимиты этапов и доли побед сейчас "
                 "(администратор, директор)", tags=FUNNEL_TAGS)
    def learn_deal_limits(self, request):
        """What the nightly job does, now: per funnel and stage, the 75th percentile of the time
        won deals spent there over 12 months, and the share of won deals among those closed."""
        return {"funnels": self.deals_tasks_rpc.learn_now()}

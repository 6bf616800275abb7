"""The funnel: stages, who may move a deal where, and the stage that the ERP documents imply.

Plain code, no framework: the service feeds it the deal's current facts and gets answers back.

A funnel has *manual* stages that people move (configurable per funnel; by default
``new → qualified → proposal``), then the fixed *ERP* ladder that is never moved by hand but derived
from the current state of the deal's posted 1C documents::

    order_confirmed < invoiced < partially_shipped < shipped < closed_won

and ``lost`` (with a reason) from any open stage. So the current stage of a deal is:

* ``lost`` while the deal is closed as lost (a sales head may reopen it);
* otherwise the stage its ERP documents imply, if it has any posted;
* otherwise the last manual stage a person chose.

Because the ERP part is a function of the *current* documents, an un-posted or deleted document
moves the deal back, and events that arrive late or twice cannot leave a different state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from crm_platform.errors import Forbidden, ValidationFailed

ERP_STAGES = ("order_confirmed", "invoiced", "partially_shipped", "shipped", "closed_won")
LOST = "lost"
WON = "closed_won"
CLOSED_STAGES = (WON, LOST)
PAYMENT_STATUSES = ("unpaid", "partially_paid", "paid")
ZERO = Decimal("0.00")

# Stage names people see, in Russian (the UI may translate the codes itself).
STAGE_TITLES = {
    "new": "Новый интерес", "qualified": "Квалифицирован", "proposal": "Коммерческое предложение",
    "order_confirmed": "Заказ подтверждён", "invoiced": "Счёт выставлен",
    "partially_shipped": "Частично отгружено", "shipped": "Отгружено",
    "closed_won": "Успешно закрыта", "lost": "Проиграна",
}


@dataclass(frozen=True)
class ErpFacts:
    """The deal's sums from its posted documents (RUB, Decimal)."""

    ordered: Decimal = ZERO
    invoiced: Decimal = ZERO
    shipped: Decimal = ZERO
    paid: Decimal = ZERO
    has_orders: bool = False       # a posted customer order (or invoice standing in for one)

    @property
    def any_posted(self) -> bool:
        return self.has_orders or self.invoiced > 0 or self.shipped > 0 or self.paid > 0


def due_amount(facts: ErpFacts) -> Decimal:
    """What the client owes for the deal: the shipped sum once everything is shipped (that is the
    revenue), else the larger of the invoice and the order."""
    if fully_shipped(facts):
        return facts.shipped
    return max(facts.invoiced, facts.ordered)


def fully_shipped(facts: ErpFacts) -> bool:
    target = facts.ordered if facts.ordered > 0 else facts.invoiced
    return facts.shipped > 0 and facts.shipped >= target


def payment_status(facts: ErpFacts) -> str:
    if facts.paid <= 0:
        return "unpaid"
    due = due_amount(facts)
    return "paid" if due > 0 and facts.paid >= due else "partially_paid"


def erp_stage(facts: ErpFacts) -> str | None:
    """The stage the posted documents imply, or None when there are none (people decide)."""
    if fully_shipped(facts):
        return WON if payment_status(facts) == "paid" else "shipped"
    if facts.shipped > 0:
        return "partially_shipped"
    if facts.invoiced > 0:
        return "invoiced"
    if facts.has_orders or facts.paid > 0:
        return "order_confirmed"
    return None


def current_stage(manual_stage: str, facts: ErpFacts, lost: bool) -> str:
    if lost:
        return LOST
    return erp_stage(facts) or manual_stage


@dataclass(frozen=True)
class StageSettings:
    code: str
    title: str
    probability: int                     # percent, the default weight in the forecast
    limit: dict | None = None            # {"amount": 2, "unit": "working_days"}; None: no limit
    limit_mode: str = "fixed"            # fixed | learned (p75 of won deals, nightly)
    tasks: tuple[dict, ...] = ()         # templates: title, due {amount, unit}, assignee, on_leave
    manual: bool = True


@dataclass(frozen=True)
class Funnel:
    """One funnel's stages in order: its manual ones, then the ERP ladder, then ``lost``."""

    funnel_id: str
    name: str
    stages: tuple[StageSettings, ...] = field(default_factory=tuple)

    @property
    def manual_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.stages if s.manual)

    def settings(self, code: str) -> StageSettings:
        for stage in self.stages:
            if stage.code == code:
                return stage
        raise KeyError(code)

    def order_of(self, code: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.code == code:
                return index
        raise KeyError(code)

    def first_stage(self) -> str:
        return self.manual_codes[0]


def check_manual_move(funnel: Funnel, *, current: str, target: str, facts: ErpFacts,
                      role: str, reason: str | None) -> None:
    """Raise unless a person with ``role`` may move a deal from ``current`` to ``target``."""
    if target == current:
        raise ValidationFailed("Сделка уже на этом этапе", fields={"stage": ["тот же этап"]})
    if target in ERP_STAGES:
        raise ValidationFailed(
            "Этапы от заказа и дальше выставляются по проведённым документам 1С",
            fields={"stage": [f"«{STAGE_TITLES.get(target, target)}» выводится из документов 1С"]})
    if current == LOST:
        raise ValidationFailed("Проигранную сделку сначала нужно переоткрыть",
                               fields={"stage": ["сделка закрыта как проигранная"]})
    if current == WON:
        raise ValidationFailed("Сделка успешно закрыта", fields={"stage": ["сделка закрыта"]})
    if target == LOST:
        if not (reason or "").strip():
            raise ValidationFailed("Укажите причину проигрыша",
                                   fields={"lost_reason": ["обязательна для этапа «Проиграна»"]})
        return
    if target not in funnel.manual_codes:
        raise ValidationFailed("Такого этапа нет в воронке",
                               fields={"stage": [f"допустимо: {', '.join(funnel.manual_codes)}"]})
    if erp_stage(facts) is not None:
        raise ValidationFailed(
            "По сделке есть проведённые документы 1С: этап определяется ими",
            fields={"stage": ["этап выводится из документов 1С"]})


def check_reopen(current: str, role: str) -> None:
    if current != LOST:
        raise ValidationFailed("Переоткрыть можно только проигранную сделку",
                               fields={"stage": ["сделка не проиграна"]})
    if role not in ("sales_head", "director", "admin"):
        raise Forbidden("Переоткрыть проигранную сделку может руководитель отдела")


def is_open(stage: str) -> bool:
    return stage not in CLOSED_STAGES


# -- the default funnel ---------------------------------------------------------------------------


def _task(title, amount, unit, on_leave="close", assignee="owner", kind="task"):
    return {"title": title, "due": {"amount": amount, "unit": unit}, "assignee": assignee,
            "on_leave": on_leave, "kind": kind}


DEFAULT_STAGES: tuple[dict, ...] = (
    {"code": "new", "title": STAGE_TITLES["new"], "probability": 10, "manual": True,
     "limit": {"amount": 2, "unit": "working_days"},
     "tasks": [_task("Связаться с клиентом по новому интересу", 2, "working_hours", kind="call")]},
    {"code": "qualified", "title": STAGE_TITLES["qualified"], "probability": 30, "manual": True,
     "limit": {"amount": 5, "unit": "working_days"},
     "tasks": [_task("Подготовить и отправить коммерческое предложение", 1, "working_days")]},
    {"code": "proposal", "title": STAGE_TITLES["proposal"], "probability": 50, "manual": True,
     "limit": {"amount": 10, "unit": "working_days"},
     "tasks": [_task("Узнать решение клиента по КП", 3, "working_days", kind="call")]},
    {"code": "order_confirmed", "title": STAGE_TITLES["order_confirmed"], "probability": 70,
     "manual": False, "limit": {"amount": 3, "unit": "working_days"},
     "tasks": [_task("Выставить счёт по заказу", 1, "working_days")]},
    {"code": "invoiced", "title": STAGE_TITLES["invoiced"], "probability": 80, "manual": False,
     "limit": {"amount": 10, "unit": "working_days"},
     "tasks": [_task("Проверить оплату счёта", 5, "working_days")]},
    {"code": "partially_shipped", "title": STAGE_TITLES["partially_shipped"], "probability": 90,
     "manual": False, "limit": {"amount": 10, "unit": "working_days"},
     "tasks": [_task("Согласовать отгрузку остатка заказа", 2, "working_days")]},
    {"code": "shipped", "title": STAGE_TITLES["shipped"], "probability": 95, "manual": False,
     "limit": {"amount": 10, "unit": "working_days"},
     "tasks": [_task("Проконтролировать оплату отгрузки", 3, "working_days", kind="call")]},
    {"code": "closed_won", "title": STAGE_TITLES["closed_won"], "probability": 100,
     "manual": False, "limit": None, "tasks": []},
    {"code": "lost", "title": STAGE_TITLES["lost"], "probability": 0, "manual": False,
     "limit": None, "tasks": []},
)

TIME_UNITS = ("minutes", "hours", "working_hours", "days", "working_days")
ASSIGNEES = ("owner", "head")
ON_LEAVE = ("close", "keep")
TASK_KINDS = ("task", "call", "meeting", "callback")


def funnel_from_config(funnel_id: str, name: str, stages: list[dict]) -> Funnel:
    return Funnel(funnel_id=str(funnel_id), name=name, stages=tuple(
        StageSettings(code=s["code"],
                      title=s.get("title") or STAGE_TITLES.get(s["code"], s["code"]),
                      probability=int(s.get("probability", 0)), limit=s.get("limit"),
                      limit_mode=s.get("limit_mode", "fixed"),
                      tasks=tuple(s.get("tasks") or ()), manual=bool(s.get("manual")))
        for s in stages))


def validate_stages(stages: list[dict]) -> list[dict]:
    """Check a funnel's stage list from the settings screen and return it in canonical form:
    the manual stages as given (at least one, unique codes), then the ERP ladder and ``lost``
    (their probabilities, limits and tasks may be changed, their order and codes not)."""
    errors: dict[str, list[str]] = {}
    manual = [s for s in stages if s.get("code") not in ERP_STAGES + (LOST,)]
    fixed = {s["code"]: s for s in stages if s.get("code") in ERP_STAGES + (LOST,)}
    if not manual:
        errors["stages"] = ["нужен хотя бы один ручной этап до заказа"]
    codes = [s.get("code") for s in manual]
    if len(set(codes)) != len(codes):
        errors["stages"] = ["коды этапов повторяются"]
    result = []
    defaults = {s["code"]: s for s in DEFAULT_STAGES}
    for index, stage in enumerate(manual + [fixed.get(c, defaults[c]) for c in
                                            ERP_STAGES + (LOST,)]):
        where = f"stages.{index}"
        code = str(stage.get("code") or "")
        if not code.isidentifier() or len(code) > 40:
            errors[f"{where}.code"] = ["латинские буквы, цифры и _, до 40 символов"]
        probability = stage.get("probability", 0)
        if not isinstance(probability, int) or not 0 <= probability <= 100:
            errors[f"{where}.probability"] = ["целое от 0 до 100"]
        limit = stage.get("limit")
        if limit is not None and not _valid_amount(limit):
            errors[f"{where}.limit"] = [f"{{amount > 0, unit: {'|'.join(TIME_UNITS)}}}"]
        if stage.get("limit_mode", "fixed") not in ("fixed", "learned"):
            errors[f"{where}.limit_mode"] = ["fixed или learned"]
        for t_index, template in enumerate(stage.get("tasks") or []):
            t_where = f"{where}.tasks.{t_index}"
            if not str(template.get("title") or "").strip():
                errors[f"{t_where}.title"] = ["обязательное поле"]
            if not _valid_amount(template.get("due")):
                errors[f"{t_where}.due"] = [f"{{amount > 0, unit: {'|'.join(TIME_UNITS)}}}"]
            if template.get("assignee", "owner") not in ASSIGNEES:
                errors[f"{t_where}.assignee"] = ["owner или head"]
            if template.get("on_leave", "close") not in ON_LEAVE:
                errors[f"{t_where}.on_leave"] = ["close или keep"]
            if template.get("kind", "task") not in TASK_KINDS:
                errors[f"{t_where}.kind"] = [", ".join(TASK_KINDS)]
        result.append({
            "code": code, "title": stage.get("title") or STAGE_TITLES.get(code, code),
            "probability": probability, "manual": code not in ERP_STAGES + (LOST,),
            "limit": limit, "limit_mode": stage.get("limit_mode", "fixed"),
            "tasks": [{"title": t.get("title"), "due": t.get("due"),
                       "assignee": t.get("assignee", "owner"),
                       "on_leave": t.get("on_leave", "close"), "kind": t.get("kind", "task")}
                      for t in stage.get("tasks") or []],
        })
    if errors:
        raise ValidationFailed("Настройки воронки не приняты", fields=errors)
    return result


def _valid_amount(value) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("amount"), (int, float))
            and value["amount"] > 0 and value.get("unit") in TIME_UNITS)

"""The salary document's life: ``draft → confirmed → approved → exported``, and back.

* **recompute** — a ``draft`` only (a ``confirmed`` one is returned first; an approved or exported
  one is frozen for good): by its manager, the sales head of its department, a director.
* **confirm** — ``draft → confirmed``: by the manager whose document it is, nobody else.
* **approve** — ``confirmed → approved``: by the sales head of the manager's department only; a
  document whose facts changed after it was confirmed (``stale``) must be returned first.
* **return** — ``confirmed → draft`` (or a draft stays a draft) with a required comment: by the
  sales head of the department.
* **export** — ``approved → exported``: the sales head of the department, a director, an admin.
* **comment** — anyone who may see it: the manager, the department's head, director, admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_platform.errors import Conflict, Forbidden, ValidationFailed

STATES = ("draft", "confirmed", "approved", "exported")
FROZEN = ("approved", "exported")
STATE_TITLES = {"draft": "черновик", "confirmed": "подтверждён менеджером",
                "approved": "утверждён руководителем", "exported": "выгружен в расчёт зарплаты"}


@dataclass(frozen=True)
class Actor:
    user_id: str
    role: str
    department_id: str | None


@dataclass(frozen=True)
class DocumentRef:
    user_id: str
    department_id: str | None
    state: str
    stale: bool = False


def is_head_of(actor: Actor, doc: DocumentRef) -> bool:
    return (actor.role == "sales_head" and actor.department_id is not None
            and str(actor.department_id) == str(doc.department_id))


def can_see(actor: Actor, doc: DocumentRef) -> bool:
    return (actor.role in ("director", "admin") or str(actor.user_id) == str(doc.user_id)
            or is_head_of(actor, doc))


def _refuse(message: str, code: str):
    raise Forbidden(message, code=code)


def _state(doc: DocumentRef, allowed: tuple[str, ...], action: str):
    if doc.state not in allowed:
        raise Conflict(f"Документ в состоянии «{STATE_TITLES[doc.state]}»: {action} невозможно",
                       code="frozen" if doc.state in FROZEN else "wrong_state",
                       extra={"state": doc.state})


def check_recompute(actor: Actor, doc: DocumentRef) -> None:
    if not (str(actor.user_id) == str(doc.user_id) or is_head_of(actor, doc)
            or actor.role == "director"):
        _refuse("Пересчитать документ может менеджер, руководитель его отдела или директор",
                "not_allowed")
    _state(doc, ("draft",), "пересчёт")


def check_confirm(actor: Actor, doc: DocumentRef) -> None:
    if str(actor.user_id) != str(doc.user_id):
        _refuse("Подтвердить документ может только сам менеджер", "not_own_document")
    _state(doc, ("draft",), "подтверждение")


def check_approve(actor: Actor, doc: DocumentRef) -> None:
    if not is_head_of(actor, doc):
        _refuse("Утвердить документ может только руководитель отдела менеджера",
                "not_head_of_department")
    _state(doc, ("confirmed",), "утверждение")
    if doc.stale:
        raise Conflict("После подтверждения изменились факты: верните документ на пересчёт",
                       code="stale_document")


def check_return(actor: Actor, doc: DocumentRef, comment: str) -> None:
    if not is_head_of(actor, doc):
        _refuse("Вернуть документ может только руководитель отдела менеджера",
                "not_head_of_department")
    _state(doc, ("draft", "confirmed"), "возврат на доработку")
    if not (comment or "").strip():
        raise ValidationFailed("Укажите, что исправить", fields={"comment": ["обязательно"]})


def check_export(actor: Actor, doc: DocumentRef) -> None:
    if not (actor.role in ("director", "admin") or is_head_of(actor, doc)):
        _refuse("Выгрузить документы может руководитель отдела, директор или администратор",
                "not_allowed")
    _state(doc, ("approved", "exported"), "выгрузка")


def check_comment(actor: Actor, doc: DocumentRef) -> None:
    if not can_see(actor, doc):
        _refuse("Нет доступа к документу", "not_allowed")

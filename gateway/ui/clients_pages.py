"""The client list (``/clients``), the client card (``/clients/<id>``) with its timeline, and the
new-client form with duplicate warnings as one types. A mixin of ``GatewayService``.

Saved filters are the clients service's segments. A filter saved from this list is stored in the
segment language as a plain list of conditions this module can read back (``filter_of_params`` /
``params_of_filter``), so applying it is the same indexed list query; a segment made elsewhere
(API, campaigns) is shown through ``segment_clients``.
"""

from __future__ import annotations

import logging

from crm_platform.errors import Conflict, DomainError, ValidationFailed

from ..pages import page, see_other
from .manager_common import (
    WORKERS,
    local_due,
    page_render,
    problem_text,
    to_decimal,
    today_msk,
    with_query,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 50
TIMELINE_PAGE = 30
OWNER_SCOPES = ("mine", "department", "pool")
TIMELINE_KINDS = (("call", "Звонки"), ("email", "Письма"), ("erp", "Документы 1С"),
                  ("stage", "Этапы"), ("task", "Задачи"), ("note", "Заметки"),
                  ("delivery", "Доставки"))
LIST_PARAMS = ("q", "region", "segment", "owner")


# -- the list's filter <-> a saved segment ---------------------------------------------------------

def list_filters(params: dict, identity) -> dict:
    """The list page's query -> ``clients.list_clients`` filters."""
    filters = {k: params[k].strip() for k in ("q", "region", "segment")
               if params.get(k, "").strip()}
    owner = params.get("owner")
    if owner == "mine":
        filters["owner_id"] = identity.user_id
    elif owner == "department" and identity.department_id:
        filters["department_id"] = identity.department_id
    elif owner == "pool":
        filters["pool"] = True
    return filters


def filter_of_params(params: dict, identity) -> list[dict]:
    """The list's query as a segment filter (a list of conditions: all must hold)."""
    conditions: list[dict] = []
    q = (params.get("q") or "").strip()
    if q:
        conditions.append({"any": [{"field": "short_name", "op": "contains", "value": q},
                                   {"field": "inn", "op": "contains", "value": q}]})
    for key in ("region", "segment"):
        if (params.get(key) or "").strip():
            conditions.append({"field": key, "op": "eq", "value": params[key].strip()})
    owner = params.get("owner")
    if owner == "mine":
        conditions.append({"field": "owner_id", "op": "eq", "value": identity.user_id})
    elif owner == "department" and identity.department_id:
        conditions.append({"field": "department_id", "op": "eq",
                           "value": identity.department_id})
    elif owner == "pool":
        conditions.append({"field": "owner_id", "op": "absent"})
    return conditions


def params_of_filter(node, identity) -> dict | None:
    """A segment filter saved by ``filter_of_params`` -> the list's query; anything else (a
    segment built elsewhere) -> None."""
    if node in (None, {}, []):
        return {}
    if not isinstance(node, list):
        return None
    params: dict = {}
    for cond in node:
        if not isinstance(cond, dict):
            return None
        if "any" in cond:
            parts = cond["any"]
            if (len(parts) == 2 and all(isinstance(p, dict) for p in parts)
                    and [(p.get("field"), p.get("op")) for p in parts]
                    == [("short_name", "contains"), ("inn", "contains")]
                    and parts[0].get("value") == parts[1].get("value") and "q" not in params):
                params["q"] = parts[0]["value"]
                continue
            return None
        field, op, value = cond.get("field"), cond.get("op"), cond.get("value")
        if field in ("region", "segment") and op == "eq" and field not in params:
            params[field] = value
        elif field == "owner_id" and op == "eq" and value == identity.user_id:
            params["owner"] = "mine"
        elif field == "department_id" and op == "eq" and value == identity.department_id:
            params["owner"] = "department"
        elif field == "owner_id" and op == "absent":
            params["owner"] = "pool"
        else:
            return None
    return params


def duplicate_candidate(form) -> dict:
    """What the duplicate check needs from a new-client or new-contact form."""
    candidate: dict = {}
    for key in ("short_name", "inn", "kpp"):
        value = (form.get(key) or "").strip()
        if value:
            candidate[key] = value
    for key, many in (("phone", "phones"), ("email", "emails")):
        value = (form.get(key) or "").strip()
        if value:
            candidate[many] = [value]
    return candidate


def client_input(form) -> tuple[dict, list[dict]]:
    """The new-client form -> (card, contacts) for ``clients.create_client``."""
    data: dict = {}
    for key in ("short_name", "full_name", "inn", "kpp", "ogrn", "region", "segment",
                "website"):
        value = (form.get(key) or "").strip()
        if value:
            data[key] = value
    for key, many in (("phone", "phones"), ("email", "emails")):
        value = (form.get(key) or "").strip()
        data[many] = [value] if value else []
    address = (form.get("address") or "").strip()
    if address:
        data["addresses"] = [{"kind": "legal", "text": address}]
    contacts = []
    if (form.get("contact_name") or "").strip():
        contacts.append(contact_input(form, prefix="contact_"))
    return data, contacts


def contact_input(form, prefix: str = "") -> dict:
    def get(key):
        return (form.get(prefix + key) or "").strip()

    name = get("name") or get("full_name")
    phone, email = get("phone"), get("email")
    return {"full_name": name, "position": get("position") or None,
            "phones": [phone] if phone else [], "emails": [email] if email else []}


class ClientPages:
    # -- the list ---------------------------------------------------------------------------------
    @page("GET", "/clients", roles=WORKERS)
    def clients_page(self, request, session):
        identity = session.identity
        clients = self.services("clients")
        args = request.args
        params = {k: args.get(k, "") for k in LIST_PARAMS}
        if params["owner"] not in OWNER_SCOPES:
            params["owner"] = ""
        segment_id = args.get("segment_id") or None
        segments = clients.list_segments() if identity.role in WORKERS else []
        try:
            offset = max(0, int(args.get("offset") or 0))
        except ValueError:
            offset = 0
        segment = next((s for s in segments if s["id"] == segment_id), None)
        if segment_id and segment is None:
            return see_other(with_query("/clients", error="Сегмент не найден"))
        if segment is not None:
            as_params = params_of_filter(segment["filter"], identity)
            if as_params is not None:      # saved from this list: the same query as typing it
                return see_other(with_query("/clients", **as_params))
            result = clients.segment_clients(segment_id=segment_id, limit=PAGE_SIZE,
                                             offset=offset)
        else:
            result = clients.list_clients(list_filters(params, identity), limit=PAGE_SIZE,
                                          offset=offset)
        items = result["items"]
        next_link = None
        base = {**params, "segment_id": segment_id}
        if result.get("next_cursor"):
            next_link = with_query("/clients", **base, cursor=result["next_cursor"])
        elif "total" in result and offset + len(items) < result["total"]:
            next_link = with_query("/clients", **base, offset=offset + PAGE_SIZE)
        prev_link = with_query("/clients", **base, offset=max(0, offset - PAGE_SIZE)) \
            if offset else None
        return page_render(request, "app/manager/clients.html", session, active="clients",
                           items=items, total=result.get("total"), offset=offset,
                           params=params, segments=segments, segment=segment,
                           next_link=next_link, prev_link=prev_link,
                           notice=args.get("notice"), error=args.get("error"))

    @page("POST", "/clients/segments", roles=WORKERS)
    def save_client_segment(self, request, session):
        """Save the list's current filter under a name (a clients segment)."""
        form = request.form
        params = {k: form.get(k, "") for k in LIST_PARAMS}
        try:
            self.services("clients").save_segment(
                form.get("name", ""), filter_of_params(params, session.identity))
        except DomainError as exc:
            return see_other(with_query("/clients", **params, error=problem_text(exc)))
        return see_other(with_query("/clients", **params, notice="Фильтр сохранён"))

    @page("POST", "/clients/segments/<uuid:segment_id>/delete", roles=WORKERS)
    def delete_client_segment(self, request, session, segment_id):
        try:
            self.services("clients").delete_segment(str(segment_id))
        except DomainError as exc:
            return see_other(with_query("/clients", error=problem_text(exc)))
        return see_other(with_query("/clients", notice="Фильтр удалён"))

    # -- a new client -----------------------------------------------------------------------------
    @page("GET", "/clients/new", roles=("manager", "sales_head", "director"))
    def new_client_page(self, request, session):
        prefill = {k: request.args.get(k, "") for k in ("short_name", "inn", "phone", "email")}
        return page_render(request, "app/manager/client_new.html", session, active="clients",
                           form=prefill, conflict=None, error=None)

    @page("POST", "/clients/new", roles=("manager", "sales_head", "director"))
    def create_client_form(self, request, session):
        form = request.form
        data, contacts = client_input(form)
        try:
            result = self.services("clients").create_client(data, contacts)
        except Conflict as exc:
            # Someone's client already (or the pool's): say whose, keep what was typed.
            return page_render(request, "app/manager/client_new.html", session,
                               active="clients", status=409, form=form, error=None,
                               conflict={"message": exc.detail, "code": exc.code,
                                         **(exc.extra if isinstance(exc.extra, dict) else {})})
        except DomainError as exc:
            return page_render(request, "app/manager/client_new.html", session,
                               active="clients", status=exc.status, form=form, conflict=None,
                               error=problem_text(exc))
        client = result["client"]
        notice = "Клиент создан" if result["created"] else "Этот клиент уже ваш — открыт он"
        return see_other(with_query(f"/clients/{client['id']}", notice=notice))

    @page("POST", "/clients/duplicates", roles=WORKERS)
    def client_duplicates(self, request, session):
        """The htmx fragment under a form: existing clients matching what is typed so far."""
        candidate = duplicate_candidate(request.form)
        matches = self._duplicates(candidate, exclude=request.form.get("client_id") or None)
        return page_render(request, "app/manager/_duplicates.html", session, matches=matches)

    def _duplicates(self, candidate: dict, exclude: str | None = None) -> list[dict]:
        clients = self.services("clients")
        # A half-typed INN or phone fails its check: drop the fields named and ask with the rest.
        for _ in range(3):
            if not candidate:
                return []
            try:
                found = clients.find_duplicates(candidate, similar=bool(
                    len(candidate.get("short_name", "")) >= 4))
                return [m for m in found if m["client_id"] != exclude][:5]
            except ValidationFailed as exc:
                bad = set(exc.fields or {}) & set(candidate)
                bad |= {k for k in candidate if any(str(f).startswith(k) for f in exc.fields)}
                if not bad:
                    return []
                candidate = {k: v for k, v in candidate.items() if k not in bad}
        return []

    # -- the card ---------------------------------------------------------------------------------
    @page("GET", "/clients/<uuid:client_id>", roles=WORKERS)
    def client_card(self, request, session, client_id):
        client_id = str(client_id)
        card = self.services("clients").get_client(client_id)
        deals = self.services("deals")
        kinds = [k for k in request.args.get("kinds", "").split(",") if k]
        timeline, timeline_error = self._timeline(client_id, kinds, None)
        client_deals = deals.list_deals({"client_id": client_id}, limit=50)["items"]
        tasks = deals.list_tasks({"client_id": client_id, "status": "open"}, limit=50)["items"]
        return page_render(request, "app/manager/client_card.html", session, active="clients",
                           client=card, timeline=timeline, timeline_error=timeline_error,
                           kinds=kinds, kind_choices=TIMELINE_KINDS, deals=client_deals,
                           tasks=tasks, today=today_msk().isoformat(),
                           notice=request.args.get("notice"),
                           error=request.args.get("error"))

    def _timeline(self, client_id: str, kinds: list[str], cursor: str | None):
        try:
            return self.services("deals").client_timeline(
                client_id, limit=TIMELINE_PAGE, cursor=cursor, kinds=kinds or None), None
        except DomainError as exc:
            return {"items": [], "next_cursor": None}, problem_text(exc)

    @page("GET", "/clients/<uuid:client_id>/timeline", roles=WORKERS)
    def client_timeline_more(self, request, session, client_id):
        """The next page of the timeline (htmx "Ещё")."""
        kinds = [k for k in request.args.get("kinds", "").split(",") if k]
        timeline, error = self._timeline(str(client_id), kinds, request.args.get("cursor"))
        return page_render(request, "app/manager/_timeline.html", session,
                           client={"id": str(client_id)}, timeline=timeline, kinds=kinds,
                           timeline_error=error)

    def _back_to_card(self, client_id, exc: DomainError | None = None, notice: str = ""):
        if exc is not None:
            return see_other(with_query(f"/clients/{client_id}", error=problem_text(exc)))
        return see_other(with_query(f"/clients/{client_id}", notice=notice))

    @page("POST", "/clients/<uuid:client_id>/notes", roles=("manager", "sales_head"))
    def client_note(self, request, session, client_id):
        try:
            self.services("deals").add_client_note(str(client_id), request.form.get("text", ""))
        except DomainError as exc:
            return self._back_to_card(client_id, exc)
        return self._back_to_card(client_id, notice="Заметка добавлена")

    @page("POST", "/clients/<uuid:client_id>/tasks", roles=("manager", "sales_head"))
    def client_task(self, request, session, client_id):
        form = request.form
        kind = form.get("kind") or "task"
        data = {"client_id": str(client_id), "kind": kind, "title": form.get("title", ""),
                "description": form.get("description") or ""}
        due = local_due(form.get("due_date", ""), form.get("due_time"))
        if kind == "meeting":
            data["starts_at"] = due
        else:
            data["due_at"] = due
        if form.get("deal_id"):
            data["deal_id"] = form["deal_id"]
        try:
            self.services("deals").create_task(data)
        except DomainError as exc:
            return self._back_to_card(client_id, exc)
        return self._back_to_card(client_id, notice="Задача добавлена")

    @page("POST", "/clients/<uuid:client_id>/contacts", roles=WORKERS)
    def client_contact(self, request, session, client_id):
        try:
            self.services("clients").add_contact(str(client_id), contact_input(request.form))
        except DomainError as exc:
            return self._back_to_card(client_id, exc)
        return self._back_to_card(client_id, notice="Контакт добавлен")

    @page("POST", "/clients/<uuid:client_id>/deals", roles=("manager", "sales_head"))
    def client_new_deal(self, request, session, client_id):
        form = request.form
        data: dict = {"client_id": str(client_id), "title": form.get("title", "").strip(),
                      "source": "manual"}
        if form.get("amount", "").strip():
            amount = to_decimal(form["amount"].replace(" ", "").replace(",", "."))
            data["amount"] = str(amount) if amount is not None else form["amount"]
        if form.get("expected_close_date"):
            data["expected_close_date"] = form["expected_close_date"]
        try:
            result = self.services("deals").create_deal(data)
        except DomainError as exc:
            return self._back_to_card(client_id, exc)
        notice = "Сделка создана" if result.get("created", True) else \
            "У клиента уже есть открытая сделка — она и открыта"
        return self._back_to_card(client_id, notice=notice)

    # -- recordings -------------------------------------------------------------------------------
    @page("GET", "/calls/<uuid:call_id>/recording", roles=WORKERS)
    def call_recording_page(self, request, session, call_id):
        """The card's player: the same short-lived signed link as the API's route (telephony
        checks that the caller may see the call's client), for the cookie session."""
        link = self.services("telephony").recording_link(str(call_id))
        response = see_other(link["url"])
        response.status_code = 302
        response.headers["Cache-Control"] = "no-store"
        return response

"""The administrator's pages (``/admin``): users, departments, regions, PBX extensions, mailboxes,
funnels with their stage task templates, pay schemes and the ERP bridge's quarantine. A mixin of
``GatewayService``.

Plain tables and forms. The services validate; a refusal (``DomainError`` with ``fields``) is
shown on the same form, next to the fields it names, with what was typed kept — never an error
page. A service that does not answer (the mail service is optional) is shown as unavailable on
its page only.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from crm_platform.errors import DomainError

from ..pages import page, see_other
from .base import ADMINS, ui_render
from .charts import money, moscow
from .head import field_errors
from .i18n import language_of, translator

log = logging.getLogger(__name__)

ROLE_TITLES = {"manager": "Менеджер", "sales_head": "Руководитель отдела",
               "director": "Директор", "admin": "Администратор",
               "integration": "Интеграция", "dispatcher": "Логист", "driver": "Водитель"}
SECTIONS = (("users", "/admin/users", "Пользователи"),
            ("departments", "/admin/departments", "Отделы"),
            ("regions", "/admin/regions", "Регионы"),
            ("extensions", "/admin/extensions", "Внутренние номера"),
            ("mailboxes", "/admin/mailboxes", "Почтовые ящики"),
            ("funnels", "/admin/funnels", "Воронки и задачи"),
            ("schemes", "/admin/schemes", "Схемы оплаты"),
            ("quarantine", "/admin/quarantine", "Карантин 1С"))
TIME_UNITS = (("hours", "ч"), ("working_hours", "рабочих ч"), ("days", "дн."),
              ("working_days", "рабочих дн."), ("minutes", "мин"))
PERCENT_KPIS = ("sales", "payments")
SCHEME_ROWS = 3


def optional(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def user_form(form, creating: bool) -> dict:
    """The user form as the directory's fields (empty optional fields as null)."""
    data = {"full_name": (form.get("full_name") or "").strip(), "role": form.get("role") or "",
            "department_id": optional(form.get("department_id")),
            "email": optional(form.get("email")), "extension": optional(form.get("extension")),
            "mailbox": optional(form.get("mailbox")), "active": form.get("active") == "1"}
    if creating:
        data["username"] = (form.get("username") or "").strip()
        data["password"] = optional(form.get("password"))
        if data["password"] is None:
            data.pop("password")
    return data


def stages_form(form, current: list[dict]) -> list[dict]:
    """The funnel form's stage rows back into the deals service's stage list: the manual stages
    as edited (a row with an empty code is dropped, a new row added), the ERP ladder's stages
    with their changed probability and limit; task templates are kept as they are."""
    by_code = {s["code"]: s for s in current}
    stages = []
    for index in range(int(form.get("rows") or 0)):
        code = (form.get(f"code_{index}") or "").strip()
        if not code:
            continue
        stage = dict(by_code.get(code, {"code": code, "tasks": []}))
        stage.pop("learned", None)
        stage.pop("limit_in_use", None)
        stage.pop("manual", None)
        stage["title"] = (form.get(f"title_{index}") or "").strip() or code
        probability = (form.get(f"probability_{index}") or "0").strip()
        stage["probability"] = int(probability) if probability.isdigit() else probability
        amount = (form.get(f"limit_{index}") or "").strip().replace(",", ".")
        if amount:
            try:
                number = float(amount)
                stage["limit"] = {"amount": int(number) if number.is_integer() else number,
                                  "unit": form.get(f"unit_{index}") or "days"}
            except ValueError:
                stage["limit"] = {"amount": amount, "unit": form.get(f"unit_{index}")}
        else:
            stage["limit"] = None
        stage["limit_mode"] = form.get(f"mode_{index}") or "fixed"
        stages.append(stage)
    return stages


def scheme_form(form) -> dict:
    """The pay scheme form as the payroll service's scheme (empty rows left out)."""
    data = {"position": (form.get("position") or "").strip(),
            "name": (form.get("name") or "").strip(),
            "valid_from": ((form.get("valid_from") or "").strip()[:7] + "-01")
            if form.get("valid_from") else "",
            "fixed": (form.get("fixed") or "0").strip().replace(",", ".").replace(" ", ""),
            "percentages": [], "bonus": None}
    for index in range(SCHEME_ROWS):
        rate = (form.get(f"pct_rate_{index}") or "").strip().replace(",", ".")
        if rate:
            data["percentages"].append({"kpi": form.get(f"pct_kpi_{index}"), "rate": rate})
    tiers = []
    for index in range(SCHEME_ROWS):
        start = (form.get(f"tier_from_{index}") or "").strip().replace(",", ".")
        rate = (form.get(f"tier_rate_{index}") or "").strip().replace(",", ".")
        if start or rate:
            tiers.append({"from_pct": start, "rate": rate})
    if tiers:
        data["bonus"] = {"base_kpi": form.get("bonus_kpi") or "sales", "tiers": tiers}
    cap = (form.get("total_cap") or "").strip().replace(",", ".").replace(" ", "")
    if cap:
        data["total_cap"] = cap
    return data


class AdminPages:
    """``/admin/...``: a mixin of ``GatewayService`` (uses ``directory`` and ``services``)."""

    def _admin_render(self, request, session, template, section, status=200, **context):
        context.setdefault("errors", {})
        context.setdefault("form", {})
        return ui_render(request, template, session, active="admin", status=status,
                         sections=SECTIONS, section=section, role_titles=ROLE_TITLES,
                         moscow=moscow, money=money, **context)

    def _notice(self, request):
        return {"notice": request.args.get("notice"), "error": request.args.get("error")}

    @page("GET", "/admin", roles=ADMINS)
    def admin_home(self, request, session):
        users = self.directory.list_users(include_inactive=True)
        departments = self.directory.list_departments()
        try:
            quarantine = len(self.services("erp_bridge").list_quarantine("open", limit=500))
        except Exception:  # noqa: BLE001 - an unavailable service is shown, not an error page
            quarantine = None
        return self._admin_render(request, session, "app/admin/home.html", "",
                                  users=users, departments=departments, quarantine=quarantine)

    # -- users ------------------------------------------------------------------------------------
    @page("GET", "/admin/users", roles=ADMINS)
    def admin_users(self, request, session):
        return self._users_page(request, session, **self._notice(request))

    def _users_page(self, request, session, status=200, **context):
        args = request.args
        users = self.directory.list_users(
            department_id=args.get("department_id") or None, role=args.get("role") or None,
            include_inactive=args.get("inactive") == "1")
        departments = self.directory.list_departments()
        names = {d["id"]: d["name"] for d in departments}
        return self._admin_render(request, session, "app/admin/users.html", "users",
                                  status=status, users=users, departments=departments,
                                  department_names=names, filters=args, **context)

    @page("POST", "/admin/users", roles=ADMINS)
    def admin_user_create(self, request, session):
        _ = translator(language_of(request))
        data = user_form(request.form, creating=True)
        try:
            user = self.directory.create_user(data)
        except DomainError as exc:
            return self._users_page(request, session, status=exc.status, form=request.form,
                                    errors=field_errors(exc), error=exc.detail or exc.title,
                                    open_create=True)
        return see_other("/admin/users?" + urlencode(
            {"notice": _("Пользователь {name} создан", name=user["username"])}))

    @page("GET", "/admin/users/<uuid:user_id>", roles=ADMINS)
    def admin_user(self, request, session, user_id):
        user = self.directory.get_user(str(user_id))
        return self._user_page(request, session, user, form=user, **self._notice(request))

    def _user_page(self, request, session, user, status=200, **context):
        return self._admin_render(request, session, "app/admin/user.html", "users",
                                  status=status, user=user,
                                  departments=self.directory.list_departments(), **context)

    @page("POST", "/admin/users/<uuid:user_id>", roles=ADMINS)
    def admin_user_update(self, request, session, user_id):
        _ = translator(language_of(request))
        try:
            self.directory.update_user(str(user_id), user_form(request.form, creating=False))
        except DomainError as exc:
            user = self.directory.get_user(str(user_id))
            return self._user_page(request, session, user, status=exc.status,
                                   form=request.form, errors=field_errors(exc),
                                   error=exc.detail or exc.title)
        return see_other(f"/admin/users/{user_id}?" + urlencode({"notice": _("Сохранено")}))

    @page("POST", "/admin/users/<uuid:user_id>/password", roles=ADMINS)
    def admin_user_password(self, request, session, user_id):
        _ = translator(language_of(request))
        try:
            self.directory.set_password(str(user_id), request.form.get("password", ""))
        except DomainError as exc:
            user = self.directory.get_user(str(user_id))
            return self._user_page(request, session, user, status=exc.status, form=user,
                                   password_errors=field_errors(exc),
                                   error=exc.detail or exc.title)
        return see_other(f"/admin/users/{user_id}?" + urlencode(
            {"notice": _("Пароль изменён")}))

    # -- departments and regions ------------------------------------------------------------------
    @page("GET", "/admin/departments", roles=ADMINS)
    def admin_departments(self, request, session):
        return self._departments_page(request, session, **self._notice(request))

    def _departments_page(self, request, session, status=200, **context):
        users = self.directory.list_users()
        return self._admin_render(
            request, session, "app/admin/departments.html", "departments", status=status,
            departments=self.directory.list_departments(), regions=self.directory.list_regions(),
            heads=[u for u in users if u["role"] == "sales_head"],
            names={u["id"]: u["full_name"] for u in users}, **context)

    @page("POST", "/admin/departments", roles=ADMINS)
    def admin_department_save(self, request, session):
        """Create a department (no ``id``) or change one's name, regions and head."""
        _ = translator(language_of(request))
        form = request.form
        data = {"name": (form.get("name") or "").strip(), "regions": form.getlist("regions"),
                "head_user_id": optional(form.get("head_user_id"))}
        department_id = optional(form.get("id"))
        try:
            if department_id:
                self.directory.update_department(department_id, data)
            else:
                self.directory.create_department(data)
        except DomainError as exc:
            return self._departments_page(request, session, status=exc.status, form=form,
                                          errors=field_errors(exc),
                                          error=exc.detail or exc.title,
                                          editing=department_id)
        return see_other("/admin/departments?" + urlencode({"notice": _("Сохранено")}))

    @page("GET", "/admin/regions", roles=ADMINS)
    def admin_regions(self, request, session):
        return self._admin_render(request, session, "app/admin/regions.html", "regions",
                                  regions=self.directory.list_regions(),
                                  **self._notice(request))

    @page("POST", "/admin/regions", roles=ADMINS)
    def admin_region_create(self, request, session):
        _ = translator(language_of(request))
        form = request.form
        try:
            self.directory.create_region({"code": (form.get("code") or "").strip().upper(),
                                          "name": (form.get("name") or "").strip()})
        except DomainError as exc:
            return self._admin_render(request, session, "app/admin/regions.html", "regions",
                                      status=exc.status, regions=self.directory.list_regions(),
                                      form=form, errors=field_errors(exc),
                                      error=exc.detail or exc.title)
        return see_other("/admin/regions?" + urlencode({"notice": _("Регион добавлен")}))

    # -- PBX extensions ---------------------------------------------------------------------------
    @page("GET", "/admin/extensions", roles=ADMINS)
    def admin_extensions(self, request, session):
        return self._extensions_page(request, session, **self._notice(request))

    def _extensions_page(self, request, session, status=200, **context):
        users = [u for u in self.directory.list_users()
                 if u["role"] in ("manager", "sales_head", "director")]
        departments = {d["id"]: d["name"] for d in self.directory.list_departments()}
        return self._admin_render(request, session, "app/admin/extensions.html", "extensions",
                                  status=status, users=users, department_names=departments,
                                  **context)

    @page("POST", "/admin/extensions/<uuid:user_id>", roles=ADMINS)
    def admin_extension_save(self, request, session, user_id):
        _ = translator(language_of(request))
        try:
            self.directory.update_user(str(user_id),
                                       {"extension": optional(request.form.get("extension"))})
        except DomainError as exc:
            return self._extensions_page(request, session, status=exc.status,
                                         errors={str(user_id): "; ".join(
                                             field_errors(exc).values()) or exc.detail},
                                         error=exc.detail or exc.title,
                                         typed={str(user_id): request.form.get("extension")})
        return see_other("/admin/extensions?" + urlencode({"notice": _("Сохранено")}))

    # -- mailboxes --------------------------------------------------------------------------------
    def _mailboxes_page(self, request, session, status=200, **context):
        try:
            mailboxes = self.services("mail").list_mailboxes()
            unavailable = False
        except DomainError:
            raise
        except Exception:  # noqa: BLE001 - the mail service is optional: say so, go on
            log.warning("mail service unavailable for the admin page", exc_info=True)
            mailboxes, unavailable = [], True
        users = self.directory.list_users()
        return self._admin_render(
            request, session, "app/admin/mailboxes.html", "mailboxes", status=status,
            mailboxes=mailboxes, unavailable=unavailable, users=users,
            departments=self.directory.list_departments(),
            names={u["id"]: u["full_name"] for u in users}, **context)

    @page("GET", "/admin/mailboxes", roles=ADMINS)
    def admin_mailboxes(self, request, session):
        return self._mailboxes_page(request, session, **self._notice(request))

    @page("POST", "/admin/mailboxes", roles=ADMINS)
    def admin_mailbox_save(self, request, session):
        """Connect a mailbox (no ``id``) or change one's connection settings."""
        _ = translator(language_of(request))
        form = request.form
        data = {key: (form.get(key) or "").strip() for key in (
            "address", "imap_host", "login", "secret_ref", "smtp_host")}
        data = {k: v for k, v in data.items() if v or k != "smtp_host"}
        for key in ("imap_port", "smtp_port"):
            if (form.get(key) or "").strip():
                value = form.get(key).strip()
                data[key] = int(value) if value.isdigit() else value
        data["enabled"] = form.get("enabled") == "1"
        mailbox_id = optional(form.get("id"))
        if not mailbox_id:
            data["kind"] = form.get("kind") or "shared"
            data["owner_id"] = optional(form.get("owner_id"))
            data["department_id"] = optional(form.get("department_id"))
        try:
            mail = self.services("mail")
            if mailbox_id:
                mail.update_mailbox(mailbox_id, data)
            else:
                mail.create_mailbox(data)
        except DomainError as exc:
            return self._mailboxes_page(request, session, status=exc.status, form=form,
                                        errors=field_errors(exc), error=exc.detail or exc.title,
                                        editing=mailbox_id)
        except Exception:  # noqa: BLE001
            log.warning("mail service unavailable for the admin page", exc_info=True)
            return self._mailboxes_page(request, session, status=503, form=form,
                                        error=_("Сервис почты недоступен"))
        return see_other("/admin/mailboxes?" + urlencode({"notice": _("Сохранено")}))

    # -- funnels and task templates ---------------------------------------------------------------
    @page("GET", "/admin/funnels", roles=ADMINS)
    def admin_funnels(self, request, session):
        funnels = self.services("deals").list_funnels()
        chosen = request.args.get("id") or (funnels[0]["id"] if funnels else None)
        funnel = next((f for f in funnels if f["id"] == chosen), None)
        return self._admin_render(request, session, "app/admin/funnels.html", "funnels",
                                  funnels=funnels, funnel=funnel, units=TIME_UNITS,
                                  **self._notice(request))

    @page("POST", "/admin/funnels/<uuid:funnel_id>", roles=ADMINS)
    def admin_funnel_save(self, request, session, funnel_id):
        """Save a funnel's stages: titles, probabilities, limits (fixed or learned); the deals
        service checks them and refuses a stale version (someone saved meanwhile)."""
        _ = translator(language_of(request))
        deals = self.services("deals")
        funnel = deals.get_funnel(str(funnel_id))
        form = request.form
        stages = stages_form(form, funnel["stages"])
        try:
            version = int(form.get("version") or 0) or None
            deals.save_funnel(str(funnel_id), (form.get("name") or "").strip(), stages,
                              expected_version=version)
        except DomainError as exc:
            funnels = deals.list_funnels()
            shown = dict(funnel, name=form.get("name") or funnel["name"],
                         stages=[dict(s, **{"limit_in_use": None}) for s in stages])
            return self._admin_render(request, session, "app/admin/funnels.html", "funnels",
                                      status=exc.status, funnels=funnels, funnel=shown,
                                      units=TIME_UNITS, errors=field_errors(exc),
                                      error=exc.detail or exc.title)
        return see_other(f"/admin/funnels?id={funnel_id}&" + urlencode(
            {"notice": _("Воронка сохранена")}))

    # -- pay schemes ------------------------------------------------------------------------------
    @page("GET", "/admin/schemes", roles=ADMINS)
    def admin_schemes(self, request, session):
        return self._schemes_page(request, session, **self._notice(request))

    def _schemes_page(self, request, session, status=200, **context):
        schemes = self.services("payroll").list_schemes()
        if "form" not in context:
            position = request.args.get("position")
            latest = next((s for s in schemes if s["position"] == position), None) \
                if position else None
            context["form"] = self._scheme_defaults(latest)
        return self._admin_render(request, session, "app/admin/schemes.html", "schemes",
                                  status=status, schemes=schemes, rows=range(SCHEME_ROWS),
                                  percent_kpis=PERCENT_KPIS, **context)

    @staticmethod
    def _scheme_defaults(latest: dict | None) -> dict:
        """A new version starts as a copy of the position's latest one."""
        if not latest:
            return {"position": "manager"}
        form = {"position": latest["position"], "name": latest.get("name") or "",
                "fixed": latest.get("fixed") or "", "total_cap": latest.get("total_cap") or ""}
        for index, rule in enumerate((latest.get("percentages") or [])[:SCHEME_ROWS]):
            form[f"pct_kpi_{index}"], form[f"pct_rate_{index}"] = rule["kpi"], rule["rate"]
        bonus = latest.get("bonus") or {}
        form["bonus_kpi"] = bonus.get("base_kpi") or "sales"
        for index, tier in enumerate((bonus.get("tiers") or [])[:SCHEME_ROWS]):
            form[f"tier_from_{index}"], form[f"tier_rate_{index}"] = (tier["from_pct"],
                                                                       tier["rate"])
        return form

    @page("POST", "/admin/schemes", roles=ADMINS)
    def admin_scheme_create(self, request, session):
        _ = translator(language_of(request))
        try:
            scheme = self.services("payroll").create_scheme_version(scheme_form(request.form))
        except DomainError as exc:
            return self._schemes_page(request, session, status=exc.status, form=request.form,
                                      errors=field_errors(exc), error=exc.detail or exc.title)
        return see_other("/admin/schemes?" + urlencode({"notice": _(
            "Схема «{position}»: версия {version}", position=scheme["position"],
            version=scheme["version"])}))

    # -- the ERP bridge's quarantine --------------------------------------------------------------
    @page("GET", "/admin/quarantine", roles=ADMINS)
    def admin_quarantine(self, request, session):
        status = request.args.get("status") if request.args.get("status") in (
            "open", "redriven", "dismissed") else "open"
        entries = self.services("erp_bridge").list_quarantine(status, limit=200)
        return self._admin_render(request, session, "app/admin/quarantine.html", "quarantine",
                                  entries=entries, shown=status, **self._notice(request))

    @page("POST", "/admin/quarantine/<int:entry_id>/<action>", roles=ADMINS)
    def admin_quarantine_action(self, request, session, entry_id, action):
        """Re-drive (try again after 1C or the format was fixed) or dismiss an entry."""
        _ = translator(language_of(request))
        erp = self.services("erp_bridge")
        try:
            if action == "redrive":
                erp.redrive_quarantine(entry_id)
                message = _("Сообщение {n} применено", n=entry_id)
            elif action == "dismiss":
                erp.dismiss_quarantine(entry_id)
                message = _("Запись {n} отклонена", n=entry_id)
            else:
                return see_other("/admin/quarantine")
        except DomainError as exc:
            return see_other("/admin/quarantine?" + urlencode(
                {"error": f"№ {entry_id}: {exc.detail or exc.title}"}))
        return see_other("/admin/quarantine?" + urlencode({"notice": message}))

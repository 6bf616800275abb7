"""Lead-intake routes of the gateway (issue 13 A): web forms (admin CRUD, the public submission
endpoint, the form page and ``embed.js``), lead distribution settings per department, absences,
and the consent store. A mixin of ``GatewayService``.

The public submission ``POST /api/v1/forms/<key>/submissions`` takes JSON or
``application/x-www-form-urlencoded`` (what ``embed.js`` and the plain page send: a "simple"
cross-site request, no CORS preflight), at most ``MAX_SUBMISSION_BYTES`` (16 KB: 413 beyond).
The deals service checks the form key, the ``Origin`` against the form's allowed sites (403), the
rate limits (429 with ``Retry-After``), spam (answered 202 like a lead, recorded as spam) and the
fields (422 naming them). The client address is ``X-Forwarded-For``'s first hop when
``TRUST_FORWARDED_FOR`` is set (behind an ingress), else the socket's.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from markupsafe import Markup
from nameko.dependency_providers import Config
from werkzeug.wrappers import Response

from crm_platform.errors import DomainError, NotFound, QuotaExceeded, ValidationFailed
from crm_platform.web import http

from ..api import ApiRpcProxy, api, problem_for
from ..pages import PAGES
from ..schemas_leads import (
    AbsenceCreateSchema,
    AbsenceQuery,
    AbsenceSchema,
    AbsenceUpdateSchema,
    ConsentQuery,
    ConsentRecordSchema,
    ConsentSchema,
    ConsentTextCreateSchema,
    ConsentTextQuery,
    ConsentTextSchema,
    ConsentWithdrawnSchema,
    ConsentWithdrawSchema,
    DistributionSchema,
    LeadFormCreateSchema,
    LeadFormSchema,
    LeadFormUpdateSchema,
    SubmissionAcceptedSchema,
)
from .deals import to_rpc

FORM_TAGS = ["lead-forms"]
DISTRIBUTION_TAGS = ["lead-distribution"]
CONSENT_TAGS = ["consents"]
MAX_SUBMISSION_BYTES = 16 * 1024
FIELD_LABELS = {"name": "Имя", "company": "Компания", "inn": "ИНН", "phone": "Телефон",
                "email": "E-mail", "region": "Регион", "message": "Сообщение",
                "consent": "Согласие", "page_url": "Страница", "referrer": "Источник"}


class PayloadTooLarge(DomainError):
    status = 413
    title = "Payload Too Large"
    code = "payload_too_large"


def submission_body(request) -> dict[str, str]:
    """The posted fields (JSON object or form-encoded), bounded in size; values as text."""
    too_big = PayloadTooLarge("Заявка слишком велика", fields={
        "body": [f"не больше {MAX_SUBMISSION_BYTES} байт"]})
    if request.content_length and request.content_length > MAX_SUBMISSION_BYTES:
        raise too_big
    raw = request.stream.read(MAX_SUBMISSION_BYTES + 1)
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise too_big
    mimetype = request.mimetype or ""
    if mimetype.endswith("json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise ValidationFailed("Тело запроса — не JSON", fields={
                "body": ["ошибка разбора JSON"]}) from None
        if not isinstance(data, dict):
            raise ValidationFailed("Ожидается JSON-объект", fields={"body": ["не объект"]})
        return {str(k): v if isinstance(v, str | bool) else ("" if v is None else str(v))
                for k, v in data.items()}
    if mimetype == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise ValidationFailed("Форма не в UTF-8", fields={"body": ["UTF-8"]}) from None
    raise ValidationFailed("Ожидается JSON или форма", fields={
        "Content-Type": ["application/json или application/x-www-form-urlencoded"]})


def _with_retry_after(response: Response, exc: Exception) -> Response:
    if isinstance(exc, QuotaExceeded) and exc.extra.get("retry_after"):
        response.headers["Retry-After"] = str(int(exc.extra["retry_after"]))
    return response


class LeadRoutes:
    lead_deals = ApiRpcProxy("deals")
    lead_clients = ApiRpcProxy("clients")
    lead_directory = ApiRpcProxy("directory")
    lead_config = Config()

    def _client_ip(self, request) -> str | None:
        trust = str(self.lead_config.get("TRUST_FORWARDED_FOR", "")).lower() in (
            "1", "true", "yes")
        return request.access_route[0] if trust and request.access_route \
            else request.remote_addr

    def _submit(self, request, key: str, data: dict) -> dict:
        return self.lead_deals.submit_form(key, data, {
            "ip": self._client_ip(request),
            "user_agent": request.headers.get("User-Agent", "")[:500],
            "origin": request.headers.get("Origin")})

    # -- public: submissions, the page, the embed script -----------------------------------------
    @api("POST", "/api/v1/forms/<key>/submissions", public=True, status=202,
         response=SubmissionAcceptedSchema, summary="Заявка с веб-формы (публично, по ключу)",
         tags=FORM_TAGS)
    def submit_form(self, request, key):
        """A visitor's submission (JSON or form-encoded: name, company, inn, phone, email,
        region, message, utm_source … utm_term, page_url, referrer, consent, form_token, the
        honeypot). 202 ``{"status": "accepted"}`` (spam too), 403 a site not allowed, 404 no such
        form, 413 over 16 KB, 422 bad fields (named), 429 with ``Retry-After``."""
        origin = request.headers.get("Origin")
        try:
            result = self._submit(request, key, submission_body(request))
            body = SubmissionAcceptedSchema().dump(result)
            response = Response(json.dumps(body), status=202, mimetype="application/json")
        except Exception as exc:  # noqa: BLE001 - every error becomes a problem document
            response = _with_retry_after(problem_for(exc), exc)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        return response

    def _form_page(self, key: str, status: int = 200, **context) -> Response:
        form = self.lead_deals.public_form(key)
        html = PAGES.get_template("forms/form.html").render(
            form=form, action=f"/forms/{key}", labels=FIELD_LABELS,
            values=context.pop("values", {}), errors=context.pop("errors", {}), **context)
        response = Response(html, status=status, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'")
        return response

    @http("GET", "/forms/<key>")
    def form_page(self, request, key):
        """The plain HTML form page of a web form (no JavaScript needed)."""
        try:
            return self._form_page(key)
        except NotFound:
            return Response("Форма не найдена", status=404, mimetype="text/plain")

    @http("POST", "/forms/<key>")
    def form_page_post(self, request, key):
        """The page's own post: a thank-you page, or the form again with the errors."""
        values: dict = {}
        try:
            values = submission_body(request)
            self._submit(request, key, values)
            html = PAGES.get_template("forms/thanks.html").render()
            return Response(html, status=200, mimetype="text/html")
        except NotFound:
            return Response("Форма не найдена", status=404, mimetype="text/plain")
        except ValidationFailed as exc:
            return self._form_page(key, status=422, values=values, errors=exc.fields)
        except QuotaExceeded as exc:
            return _with_retry_after(self._form_page(
                key, status=429, values=values,
                notice="Слишком много заявок с вашего адреса: попробуйте через минуту"), exc)
        except DomainError as exc:
            return self._form_page(key, status=exc.status, values=values, notice=exc.detail)

    @http("GET", "/forms/<key>/embed.js")
    def form_embed(self, request, key):
        """A script that draws the form where it is included and posts it here (vanilla JS)."""
        try:
            form = self.lead_deals.public_form(key)
        except NotFound:
            return Response("/* form not found */", status=404,
                            mimetype="application/javascript")
        base = request.host_url.rstrip("/")
        script = PAGES.get_template("forms/embed.js").render(
            config=Markup(json.dumps({
                "action": f"{base}/api/v1/forms/{key}/submissions", "name": form["name"],
                "token": form["token"], "honeypot": form["honeypot_field"],
                "consentRequired": form["consent_required"],
                "consentText": form["consent_text"], "labels": FIELD_LABELS},
                ensure_ascii=False).replace("</", "<\\/")))
        response = Response(script, mimetype="application/javascript")
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- forms admin ------------------------------------------------------------------------------
    @api("GET", "/api/v1/lead-forms", response=LeadFormSchema, many=True,
         summary="Веб-формы заявок", tags=FORM_TAGS)
    def list_lead_forms(self, request):
        """Forms (a sales head: their department's) with the last day's leads and spam."""
        return self.lead_deals.list_forms()

    @api("POST", "/api/v1/lead-forms", body=LeadFormCreateSchema, response=LeadFormSchema,
         status=201, idempotent=True, summary="Создать веб-форму", tags=FORM_TAGS)
    def create_lead_form(self, request, body):
        """A new form with a random public key: its page is ``/forms/<key>``, the script to put
        on a site ``<script src="/forms/<key>/embed.js"></script>``."""
        return self.lead_deals.create_form(to_rpc(body))

    @api("PATCH", "/api/v1/lead-forms/<uuid:form_id>", body=LeadFormUpdateSchema,
         response=LeadFormSchema, summary="Изменить веб-форму", tags=FORM_TAGS)
    def update_lead_form(self, request, form_id, body):
        """Change settings; ``active: false`` switches the form off (404 for visitors)."""
        return self.lead_deals.update_form(str(form_id), to_rpc(body))

    # -- distribution -----------------------------------------------------------------------------
    @api("GET", "/api/v1/departments/<uuid:department_id>/lead-distribution",
         response=DistributionSchema, summary="Распределение интересов отдела",
         tags=DISTRIBUTION_TAGS)
    def get_lead_distribution(self, request, department_id):
        """Whether ownerless leads are given out, how (round robin, least loaded), the cap."""
        return self.lead_deals.get_distribution(str(department_id))

    @api("PUT", "/api/v1/departments/<uuid:department_id>/lead-distribution",
         body=DistributionSchema, response=DistributionSchema,
         summary="Настроить распределение интересов отдела", tags=DISTRIBUTION_TAGS)
    def set_lead_distribution(self, request, department_id, body):
        """The admin or the department's sales head."""
        return self.lead_deals.set_distribution(str(department_id), to_rpc(body))

    @api("GET", "/api/v1/absences", query=AbsenceQuery, response=AbsenceSchema, many=True,
         summary="Отсутствия сотрудников", tags=DISTRIBUTION_TAGS)
    def list_absences(self, request, query):
        """Current and future absences (a sales head: of their department)."""
        q = to_rpc(query)
        return self.lead_directory.list_absences(q.get("user_id"), q.get("department_id"),
                                                 q.get("since"))

    @api("POST", "/api/v1/users/<uuid:user_id>/absences", body=AbsenceCreateSchema,
         response=AbsenceSchema, status=201,
         idempotent=True, summary="Отпуск, больничный, командировка",
         tags=DISTRIBUTION_TAGS)
    def add_absence(self, request, user_id, body):
        """Leads are not given to a person on the days of an absence."""
        return self.lead_directory.add_absence(str(user_id), to_rpc(body))

    @api("PATCH", "/api/v1/absences/<uuid:absence_id>", body=AbsenceUpdateSchema,
         response=AbsenceSchema, summary="Изменить или отменить отсутствие",
         tags=DISTRIBUTION_TAGS)
    def update_absence(self, request, absence_id, body):
        """Dates, kind, note; ``cancelled: true`` cancels it (kept in the history)."""
        return self.lead_directory.update_absence(str(absence_id), to_rpc(body))

    # -- consents ---------------------------------------------------------------------------------
    @api("POST", "/api/v1/consents", body=ConsentRecordSchema, response=ConsentSchema,
         status=201, idempotent=True, summary="Зафиксировать согласие", tags=CONSENT_TAGS)
    def record_consent(self, request, body):
        """A consent given (152-FZ processing, marketing e-mail or calls) with the text version,
        time, source, IP and user agent."""
        return self.lead_clients.record_consent(to_rpc(body))

    @api("POST", "/api/v1/consents/withdrawals", body=ConsentWithdrawSchema,
         response=ConsentWithdrawnSchema, summary="Отзыв согласия", tags=CONSENT_TAGS)
    def withdraw_consent(self, request, body):
        """Open consents of the person for the purpose are marked withdrawn (never deleted)."""
        return self.lead_clients.withdraw_consent(to_rpc(body))

    @api("GET", "/api/v1/consents", query=ConsentQuery, response=ConsentSchema, many=True,
         summary="История согласий человека", tags=CONSENT_TAGS)
    def list_consents(self, request, query):
        """By ``email`` and/or ``phone``; the read is audited."""
        return self.lead_clients.list_consents(to_rpc(query))

    @api("GET", "/api/v1/consent-texts", query=ConsentTextQuery, response=ConsentTextSchema,
         many=True, summary="Тексты согласий (версии)", tags=CONSENT_TAGS)
    def list_consent_texts(self, request, query):
        return self.lead_clients.consent_texts(query.get("purpose"))

    @api("POST", "/api/v1/consent-texts", body=ConsentTextCreateSchema,
         response=ConsentTextSchema, status=201,
         idempotent=True, summary="Новая версия текста согласия",
         tags=CONSENT_TAGS)
    def add_consent_text(self, request, body):
        """Admin; a version is never edited — a changed text is a new version."""
        b = to_rpc(body)
        return self.lead_clients.add_consent_text(b["purpose"], b["version"], b["text"],
                                                  b.get("valid_from"))

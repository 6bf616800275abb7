"""Server-rendered pages of the gateway: a cookie session on the API's own tokens, CSRF-safe forms.

The JSON API takes a bearer token in ``Authorization``. A browser page cannot send that header on
a plain link or form, so pages carry the *same* token in a cookie, set by a small login form:

* ``crm_session`` — the token itself; ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict``
  (no other site's page can make the browser send it), ``Path=/``, ``Secure`` when the request came
  over HTTPS (or ``PAGES_SECURE_COOKIE`` is true), and it lives as long as the token.
* Every form posted by a page carries ``csrf_token``: an HMAC of the session token under the
  gateway's ``JWT_SECRET``. A post without the right one is refused (403), so even a browser that
  ignores ``SameSite`` cannot be made to post a form from elsewhere. The login form, posted before
  there is a session, uses a double-submit value instead (``crm_login_csrf`` cookie = hidden field).

Use it for any page (issue 14's web UI builds on it)::

    class SomePages:
        @page("GET", "/things", roles=("manager",))
        def things(self, request, session):        # session: PageSession
            return render("things.html", session, items=self.rpc.list_things())

        @page("POST", "/things/<uuid:thing_id>/done", roles=("manager",))
        def thing_done(self, request, session, thing_id):
            self.rpc.finish(str(thing_id))                  # the RPC carries the identity
            return see_other("/things")

``session.identity`` is the caller, ``session.csrf`` goes into forms (``{{ csrf_field() }}`` in
templates rendered through ``render``). Without a valid session a GET is redirected to
``/login?next=...`` and a POST answered 401; a role outside ``roles`` gets a 403 page. A
``DomainError`` a handler lets through becomes an error page with its status and message.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from eventlet.event import Event
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from nameko.dependency_providers import Config
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from crm_platform.errors import DomainError, Unauthenticated
from crm_platform.identity import IDENTITY_CONTEXT_KEY, Identity
from crm_platform.web import HttpEndpoint

from .api import UpstreamTimeout, wait_for_worker
from .auth import Authority
from .ui.i18n import LANGUAGES, language_of, translator

log = logging.getLogger(__name__)

SESSION_COOKIE = "crm_session"
LOGIN_CSRF_COOKIE = "crm_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# In the static files' URLs (``?v=``): bump when a file under gateway/static changes, so browsers
# fetch the new one instead of their day-long cached copy.
ASSET_VERSION = "3"
MAX_FORM_BYTES = 64 * 1024

PAGES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                    autoescape=select_autoescape(["html"]))


def csrf_token(secret: str, token: str) -> str:
    """The form token of a session: HMAC-SHA256 of the session token under the gateway secret."""
    return hmac.new(secret.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go to after login; anything else (other hosts, ``//host``) -> default."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


@dataclass(frozen=True)
class PageSession:
    identity: Identity
    token: str
    csrf: str


def render(template: str, session: PageSession | None = None, status: int = 200,
           **context) -> Response:
    """An HTML page from ``gateway/templates`` with ``session``, ``identity`` and
    ``csrf_field()`` in its context."""
    def csrf_field():
        value = session.csrf if session else context.get("login_csrf", "")
        return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{value}">')

    html = PAGES.get_template(template).render(
        session=session, identity=session.identity if session else None,
        csrf_field=csrf_field, **context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
    return response


def see_other(location: str) -> Response:
    """The answer to a successful form post (303: the browser GETs the page again)."""
    return redirect(location, code=303)


def error_page(status: int, message: str, session: PageSession | None = None) -> Response:
    return render("logistics/error.html", session, status=status, message=message)


class PageEndpoint(HttpEndpoint):
    """An HTML page or form target behind the cookie session (see the module docstring)."""

    authority = Authority()

    def __init__(self, method, url, *, roles: tuple[str, ...] = (), public: bool = False,
                 max_body_bytes: int = MAX_FORM_BYTES, **kwargs):
        super().__init__(method, url, **kwargs)
        self.roles = tuple(roles)
        self.public = public
        self.max_body_bytes = max_body_bytes

    def secret(self) -> str:
        return self.authority.authority.secret or ""

    def session_of(self, request) -> PageSession:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise Unauthenticated("Войдите в систему", code="missing_session")
        identity = self.authority.authority.verify(f"Bearer {token}")
        return PageSession(identity, token, csrf_token(self.secret(), token))

    def handle_request(self, request):
        request.shallow = False
        session = None
        try:
            context_data = {}
            kwargs = {}
            if self.method == "POST":
                request.max_content_length = self.max_body_bytes
                if request.content_length and request.content_length > self.max_body_bytes:
                    return error_page(413, "Слишком большой запрос")
            if not self.public:
                try:
                    session = self.session_of(request)
                except Unauthenticated:
                    if self.method == "GET":
                        return redirect("/login?next=" + quote(request.full_path.rstrip("?")),
                                        code=303)
                    return error_page(401, "Сессия истекла: войдите снова")
                if self.roles and session.identity.role not in self.roles:
                    return error_page(403, "Эта страница не для вашей роли", session)
                # Forms carry the token as a field; scripts (htmx, drag and drop) as a header.
                sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
                if self.method == "POST" and not hmac.compare_digest(sent, session.csrf):
                    return error_page(403, "Форма устарела: обновите страницу", session)
                context_data[IDENTITY_CONTEXT_KEY] = session.identity.to_context()
                kwargs["session"] = session
            args, path_kwargs = self.get_entrypoint_parameters(request)
            kwargs.update(path_kwargs)
            done = Event()
            self.container.spawn_worker(
                self, args, kwargs, context_data=context_data,
                handle_result=lambda worker_ctx, result, exc_info: (
                    done.send(result, exc_info), (result, exc_info))[1])
            return wait_for_worker(done, self.container.config, request)
        except UpstreamTimeout:
            return error_page(504, "Сервис не ответил вовремя; обновите страницу", session)
        except DomainError as exc:
            return error_page(exc.status, exc.detail or exc.title, session)
        except Exception:  # noqa: BLE001 - a page never shows internals
            log.exception("page %s %s failed", self.method, self.url)
            return error_page(500, "Внутренняя ошибка; подробности в журнале шлюза", session)


page = PageEndpoint.decorator


def login_render(request, status: int = 200, **context) -> Response:
    """The sign-in page, in the language the browser asks for."""
    lang = language_of(request)
    return render("app/login.html", status=status, _=translator(lang), lang=lang,
                  languages=LANGUAGES, here=quote(request.full_path.rstrip("?"), safe="/?=&"),
                  asset_version=ASSET_VERSION, nav=[], **context)


class PageSessionRoutes:
    """``/login`` (form), ``/logout``: the cookie session of every page. A mixin of
    ``GatewayService`` (needs ``directory`` and ``tokens``)."""

    pages_config = Config()

    # Without ``next``, a signed-in person goes to ``/app``, which sends each role to its main page
    # (gateway/ui/base.py: HOME_BY_ROLE).

    @page("GET", "/login", public=True)
    def login_page(self, request):
        value = secrets.token_urlsafe(24)
        response = login_render(request, login_csrf=value,
                                next=safe_next(request.args.get("next"), ""))
        response.set_cookie(LOGIN_CSRF_COOKIE, value, httponly=True, samesite="Strict",
                            secure=request.scheme == "https", path="/login", max_age=3600)
        return response

    @page("POST", "/login", public=True)
    def login_form(self, request):
        form = request.form
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        next_path = safe_next(form.get("next"), "")
        if not expected or not hmac.compare_digest(form.get(CSRF_FIELD, ""), expected):
            return error_page(403, "Форма устарела: откройте страницу входа снова")
        try:
            identity = self.directory.authenticate(form.get("username", ""),
                                                   form.get("password", ""))
            token, ttl = self.tokens.issue(identity)
        except DomainError as exc:
            _ = translator(language_of(request))
            response = login_render(request, status=401, login_csrf=expected, next=next_path,
                                    login_error=exc.detail or _("Неверный логин или пароль"),
                                    username=form.get("username", ""))
            return response
        target = next_path or "/app"
        response = see_other(target)
        secure = request.scheme == "https" or str(
            self.pages_config.get("PAGES_SECURE_COOKIE", "")).lower() in ("1", "true")
        response.set_cookie(SESSION_COOKIE, token, max_age=int(ttl), httponly=True,
                            samesite="Strict", secure=secure, path="/")
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @page("POST", "/logout")
    def logout_form(self, request, session):
        response = see_other("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

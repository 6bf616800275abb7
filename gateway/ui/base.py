"""The frame of the web UI: the layout every page extends (``app/base.html``), the navigation by
role, the language switch and the static files (CSS, the UI's own scripts and the vendored htmx —
no runtime CDN: the pages must work inside a company network that blocks the internet).

A page of the UI::

    from gateway.pages import page
    from gateway.ui.base import ui_render

    class ThingPages:
        @page("GET", "/things", roles=MANAGERS)
        def things(self, request, session):
            return ui_render(request, "app/things.html", session, active="things",
                             items=self.services("deals").list_things())

``ui_render`` adds ``_`` (the translator), ``lang``, the navigation of the caller's role, and
``active`` (the highlighted menu entry) to the template's context; templates extend
``app/base.html`` and fill ``{% block content %}`` (and ``{% block scripts %}``).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import quote

from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from crm_platform.web import http

from ..pages import ASSET_VERSION, PageSession, page, render, safe_next, see_other
from .i18n import LANG_COOKIE, LANGUAGES, language_of, translator

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# Who uses what. The services check access again on every RPC; this only shapes the menu and
# sends people to pages meant for them.
MANAGERS = ("manager", "sales_head", "director", "admin")
HEADS = ("sales_head", "director", "admin")
ADMINS = ("admin",)

# (menu key, path, Russian label, roles that see it)
NAVIGATION = (
    ("desk", "/desk", "Рабочий стол", MANAGERS),
    ("clients", "/clients", "Клиенты", MANAGERS),
    ("funnel", "/funnel", "Воронка", MANAGERS),
    ("calendar", "/calendar", "Календарь", MANAGERS),
    ("reports", "/head/reports", "Отчёты", HEADS),
    ("handover", "/head/handover", "Передача клиентов", HEADS),
    ("pool", "/head/pool", "Пул и резервы", ("manager", *HEADS)),
    ("salary", "/head/salary", "Зарплата", HEADS),
    ("admin", "/admin", "Администрирование", ADMINS),
)

HOME_BY_ROLE = {"manager": "/desk", "sales_head": "/desk", "director": "/head/reports",
                "admin": "/admin", "driver": "/logistics/driver",
                "dispatcher": "/logistics/dispatcher"}


def navigation_for(role: str) -> list[dict]:
    return [{"key": key, "path": path, "label": label}
            for key, path, label, roles in NAVIGATION if role in roles]


def ui_render(request, template: str, session: PageSession | None, status: int = 200,
              active: str = "", **context) -> Response:
    """An HTML page of the UI in the caller's language (see the module docstring)."""
    lang = language_of(request)
    role = session.identity.role if session else ""
    return render(template, session, status=status, _=translator(lang), lang=lang,
                  languages=LANGUAGES, nav=navigation_for(role), active=active,
                  here=quote(request.full_path.rstrip("?"), safe="/?=&"),
                  asset_version=ASSET_VERSION, **context)


class UiBaseRoutes:
    """Static files, the language switch and the UI's home. A mixin of ``GatewayService``."""

    @http("GET", "/static/<path:path>")
    def static_file(self, request, path):
        """Files under gateway/static; long-cached (the templates add ``?v=ASSET_VERSION``)."""
        full = safe_join(str(STATIC_DIR), path)
        if full is None or not Path(full).is_file():
            return Response("Not found", status=404, mimetype="text/plain")
        mimetype = mimetypes.guess_type(full)[0] or "application/octet-stream"
        response = Response(Path(full).read_bytes(), mimetype=mimetype)
        response.headers["Cache-Control"] = "public, max-age=86400"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @http("GET", "/lang/<code>")
    def switch_language(self, request, code):
        """Remember the chosen language for a year and go back to the page it was chosen on."""
        response = see_other(safe_next(request.args.get("next"), "/app"))
        if code in LANGUAGES:
            response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="Lax",
                                path="/")
        return response

    @page("GET", "/app")
    def app_home(self, request, session):
        """Where a signed-in person starts: their role's main page."""
        return see_other(HOME_BY_ROLE.get(session.identity.role, "/desk"))

"""HTTP plumbing shared by every service's web server (health, metrics) and the gateway.

Every error a client sees is an RFC 9457 problem document (``application/problem+json``): routing
errors (404, 405) included, which nameko's own web server would answer in plain text or HTML.
"""

from __future__ import annotations

import json

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

PROBLEM_MIME = "application/problem+json"


def problem_response(status: int, title: str, detail: str = "", *, type_: str = "about:blank",
                     **extra) -> Response:
    body = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v not in (None, {}, [])})
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIME)


PROBLEM_BASE = "https://roofcrm.dev/problems/"


def routing_problem(exc: HTTPException, request) -> Response:
    if exc.code == 404:
        return problem_response(404, "Not Found", f"Нет такого ресурса: {request.path}",
                                type_=PROBLEM_BASE + "no_such_route", code="no_such_route")
    if exc.code == 405:
        response = problem_response(
            405, "Method Not Allowed", f"{request.method} не поддерживается для {request.path}",
            type_=PROBLEM_BASE + "method_not_allowed", code="method_not_allowed")
        response.headers["Allow"] = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
        return response
    return problem_response(exc.code or 500, exc.name, exc.description or "")


class ProblemWsgiApp(WsgiApp):
    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = routing_problem(exc, request)
        return response(environ, start_response)


class ProblemWebServer(WebServer):
    def get_wsgi_app(self):
        return ProblemWsgiApp(self)


class HttpEndpoint(HttpRequestHandler):
    """nameko's ``http`` on the problem-speaking server (one server class per process: nameko
    shares a web server per class, and two classes would fight over the port)."""

    server = ProblemWebServer()

    def response_from_exception(self, exc):
        return problem_response(500, "Internal Server Error",
                                "Внутренняя ошибка; подробности в журнале сервиса")


http = HttpEndpoint.decorator

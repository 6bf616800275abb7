"""A fake 1C:Enterprise standard OData interface for tests, served over real HTTP.

It keeps entity sets in memory and answers the way a published UT 11 base does (as far as the
bridge uses it):

* ``GET /<base>/odata/standard.odata/<Set>?$format=json[&$filter][&$orderby][&$top][&$skip]``
  → ``{"odata.metadata": "…/$metadata#<Set>", "value": [...]}``;
* ``GET …/<Set>(guid'<Ref_Key>')?$format=json`` → the entity itself (with ``odata.metadata``),
  404 with an ``odata.error`` body when there is no such object;
* Basic authentication (UTF-8 credentials): 401 with ``WWW-Authenticate`` otherwise;
* ``$filter``: ``<Field> <eq|ne|gt|ge|lt|le> <literal>`` joined by ``and``, literals
  ``datetime'…'``, ``guid'…'``, ``'text'``, numbers, ``true``/``false``; anything else is a 400.

Helpers: ``put`` (a new ``DataVersion`` each time), ``change`` (fields updated, version bumped),
``delete`` (physically), ``fail_next`` (the next requests get an error), and the request log
(``requests``, ``count``).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import struct
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

_PATH = re.compile(r"^/(?P<base>[^/]+)/odata/standard\.odata/(?P<set>\w+)"
                   r"(?:\(guid'(?P<key>[0-9A-Fa-f-]{36})'\))?/?$")
_CONDITION = re.compile(r"^\s*(?P<field>\w+)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<value>.+?)\s*$")
_OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b}
DEFAULT_SETS = (
    "Catalog_Контрагенты", "Catalog_КонтактныеЛицаПартнеров", "Catalog_Партнеры",
    "Catalog_ОбъектыРасчетов", "Document_ЗаказКлиента", "Document_СчетНаОплатуКлиенту",
    "Document_РеализацияТоваровУслуг", "Document_ПоступлениеБезналичныхДенежныхСредств",
)


class BadQuery(ValueError):
    pass


@dataclass(frozen=True)
class SeenRequest:
    method: str
    entity_set: str | None
    key: str | None                 # the Ref_Key of a keyed read
    args: dict[str, str]            # the query ($format, $filter, $top…)
    status: int


class FakeOData:
    def __init__(self, *, username: str = "Интеграция", password: str = "secret",
                 base: str = "ut", entity_sets=DEFAULT_SETS):
        self.username = username
        self.password = password
        self.base = base
        self.sets: dict[str, dict[str, dict]] = {name: {} for name in entity_sets}
        self.requests: list[SeenRequest] = []
        self._failures: list[tuple[int, str]] = []
        self._version = 0
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # -- data --------------------------------------------------------------------------------

    def put(self, entity_set: str, entity: dict) -> dict:
        """Store (or overwrite) an entity: a ``Ref_Key`` if it has none, a new ``DataVersion``,
        ``DeletionMark`` false unless given. Returns a copy of what is stored."""
        with self._lock:
            stored = copy.deepcopy(entity)
            stored.setdefault("Ref_Key", str(uuid.uuid4()))
            stored["Ref_Key"] = str(uuid.UUID(stored["Ref_Key"]))
            stored.setdefault("DeletionMark", False)
            stored["DataVersion"] = self._next_version()
            self.sets.setdefault(entity_set, {})[stored["Ref_Key"]] = stored
            return copy.deepcopy(stored)

    def change(self, entity_set: str, ref_key, **fields) -> dict:
        """A write in 1C: fields replaced, a new ``DataVersion``."""
        with self._lock:
            stored = self.sets[entity_set][str(uuid.UUID(str(ref_key)))]
            stored.update(copy.deepcopy(fields))
            stored["DataVersion"] = self._next_version()
            return copy.deepcopy(stored)

    def delete(self, entity_set: str, ref_key) -> None:
        """A physical deletion: the next keyed read is a 404."""
        with self._lock:
            del self.sets[entity_set][str(uuid.UUID(str(ref_key)))]

    def entity(self, entity_set: str, ref_key) -> dict:
        with self._lock:
            return copy.deepcopy(self.sets[entity_set][str(uuid.UUID(str(ref_key)))])

    def fail_next(self, status: int, message: str = "Ошибка сервера", times: int = 1) -> None:
        """The next ``times`` requests are answered ``status`` with an ``odata.error`` body."""
        with self._lock:
            self._failures.extend([(status, message)] * times)

    def _next_version(self) -> str:
        self._version += 1
        return base64.b64encode(struct.pack(">II", self._version, 0)).decode("ascii")

    # -- the request log ---------------------------------------------------------------------

    def count(self, entity_set: str | None = None, *, keyed: bool | None = None) -> int:
        return sum(1 for r in self.requests
                   if (entity_set is None or r.entity_set == entity_set)
                   and (keyed is None or (r.key is not None) == keyed))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- HTTP --------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self._answer(request)
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        entity_set = match["set"] if match else None
        key = match["key"].lower() if match and match["key"] else None
        args = dict(request.args)

        def done(response: Response) -> Response:
            with self._lock:
                self.requests.append(SeenRequest(request.method, entity_set, key, args,
                                                 response.status_code))
            return response

        if not self._authorized(request.headers.get("Authorization", "")):
            return done(Response("Unauthorized", status=401, content_type="text/plain",
                                 headers={"WWW-Authenticate": 'Basic realm="1C:Enterprise"'}))
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return done(_error(*failure))
        if request.method != "GET":
            return done(_error(405, "Метод не поддерживается"))
        if match is None or match["base"] != self.base or entity_set not in self.sets:
            return done(_error(404, f"Не найден ресурс: {request.path}"))
        if not args.get("$format", "").startswith("json"):
            return done(_error(400, "Эта подделка отвечает только JSON ($format=json)"))
        metadata = (f"{request.host_url}{self.base}/odata/standard.odata/$metadata"
                    f"#{entity_set}")
        with self._lock:
            if key is not None:
                entity = copy.deepcopy(self.sets[entity_set].get(key))
            else:
                rows = copy.deepcopy(list(self.sets[entity_set].values()))
        if key is not None:
            if entity is None:
                return done(_error(404, f"Не найден объект {entity_set}({key})"))
            return done(_json({"odata.metadata": metadata + "/@Element", **entity}))
        try:
            rows = _query(rows, args)
        except BadQuery as exc:
            return done(_error(400, str(exc)))
        return done(_json({"odata.metadata": metadata, "value": rows}))

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
        except ValueError:
            return False
        return user == self.username and password == self.password

    # -- serving -----------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free local port in a thread; returns the base URL (``http://…/<base>``)."""
        self._server = make_server("127.0.0.1", 0, self, threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{self.base}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextmanager
    def serving(self):
        url = self.start()
        try:
            yield url
        finally:
            self.stop()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def _json(body, status: int = 200) -> Response:
    text = json.dumps(body, ensure_ascii=False, default=_plain)
    return Response(text, status=status, content_type="application/json;charset=utf-8")


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {value!r}")


def _error(status: int, message: str) -> Response:
    return _json({"odata.error": {"code": "-1", "message": {"lang": "ru", "value": message}}},
                 status=status)


# -- $filter / $orderby / $top / $skip -------------------------------------------------------------


def _query(rows: list[dict], args: dict[str, str]) -> list[dict]:
    if "$filter" in args:
        conditions = [_condition(part) for part in re.split(r"\s+and\s+", args["$filter"])]
        rows = [row for row in rows if all(test(row) for test in conditions)]
    if "$orderby" in args:
        for term in reversed([t.strip() for t in args["$orderby"].split(",")]):
            name, _, direction = term.partition(" ")
            if direction.strip() not in ("", "asc", "desc"):
                raise BadQuery(f"Неверное направление сортировки: {term}")
            rows = sorted(rows, key=lambda row, n=name: _sort_key(row.get(n)),
                          reverse=direction.strip() == "desc")
    try:
        skip = int(args.get("$skip", "0"))
        top = int(args["$top"]) if "$top" in args else None
    except ValueError:
        raise BadQuery("$top/$skip не число") from None
    rows = rows[skip:]
    return rows if top is None else rows[:top]


def _sort_key(value):
    return (value is None, str(value) if value is not None else "")


def _condition(text: str):
    match = _CONDITION.match(text)
    if match is None:
        raise BadQuery(f"Неподдерживаемое условие отбора: {text}")
    field, op, literal = match["field"], _OPS[match["op"]], match["value"]
    convert, expected = _literal(literal)

    def test(row: dict) -> bool:
        value = row.get(field)
        if value is None:
            return False
        try:
            return op(convert(value), expected)
        except (TypeError, ValueError):
            return False

    return test


def _literal(literal: str):
    """(how to read the entity's value, the literal's value) for one comparison."""
    if m := re.fullmatch(r"datetime'([^']+)'", literal):
        return datetime.fromisoformat, datetime.fromisoformat(m[1])
    if m := re.fullmatch(r"guid'([0-9A-Fa-f-]{36})'", literal):
        return lambda v: str(v).lower(), m[1].lower()
    if m := re.fullmatch(r"'((?:[^']|'')*)'", literal):
        return str, m[1].replace("''", "'")
    if literal in ("true", "false"):
        return bool, literal == "true"
    try:
        return (lambda v: Decimal(str(v))), Decimal(literal)
    except ArithmeticError:
        raise BadQuery(f"Неверный литерал: {literal}") from None

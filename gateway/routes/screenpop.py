"""Live streams of the gateway (Server-Sent Events, one ``LiveHub`` behind them all, see
``gateway/screenpop.py``): a mixin of ``GatewayService``.

``GET /api/v1/screen-pop`` streams the caller's ringing calls, ``GET /api/v1/kpi/stream`` the
caller's KPI widget whenever its figures move (the current widget first)::

    const es = new EventSource("/api/v1/screen-pop?access_token=" + token);
    es.addEventListener("ringing", (e) => show(JSON.parse(e.data)));
    const kpi = new EventSource("/api/v1/kpi/stream?access_token=" + token);
    kpi.addEventListener("kpi", (e) => render(JSON.parse(e.data)));

The token comes as usual in ``Authorization: Bearer``; a browser's ``EventSource`` cannot send
headers, so ``?access_token=`` is taken too, and so is the web UI's session cookie
(``crm_session``, the same token) (checked by the same ``Authority``; keep it out of
access logs). Each ring is ``event: ringing`` with the call and the client summary, or
``"unknown": true`` with the request that creates a lead; ``: ping`` comments every 15 s keep
proxies from closing an idle stream.

Only the start of the request runs in a nameko worker (the token, the subscription); the worker is
over when the response starts, and the stream's body runs in the web server's connection thread,
waiting on the hub's queue only — an open browser holds no worker slot. A client that goes away is
noticed at the next write (a ping at the latest) and unsubscribed.
"""

from __future__ import annotations

import logging

import eventlet
from eventlet.queue import Empty
from marshmallow import EXCLUDE, Schema, fields
from werkzeug.wrappers import Response

from crm_platform.identity import Caller

from ..api import ApiEndpoint, ApiRpcProxy
from ..pages import SESSION_COOKIE
from ..screenpop import CLOSED, KPI, SCREEN_POP, LiveHub, Subscription, sse_frame

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
SNAPSHOT_TIMEOUT_S = 2.0
RETRY_MS = 3000


class ScreenPopQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    access_token = fields.String(load_only=True, metadata={
        "description": "the bearer token, for EventSource (it cannot send headers)"})


class EventStreamEndpoint(ApiEndpoint):
    """``@api`` for a streaming response: ``?access_token=`` stands in for a missing
    ``Authorization`` header, and eventlet writes every chunk as soon as it is yielded."""

    def handle_request(self, request):
        environ = request.environ
        if not environ.get("HTTP_AUTHORIZATION"):
            # The web UI's pages hold the same token in their HttpOnly session cookie (a script
            # cannot read it to put it in the URL); a read-only stream may take it from there.
            token = request.args.get("access_token") or request.cookies.get(SESSION_COOKIE)
            if token:
                environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        # eventlet's WSGI server buffers the body into 4 KiB writes by default.
        environ["eventlet.minimum_write_chunk_size"] = 0
        return super().handle_request(request)


event_stream = EventStreamEndpoint.decorator


class EventStream:
    """The body of an SSE response. ``close`` (called by the WSGI server when the response ends,
    the client went away or the body was never started) unsubscribes."""

    def __init__(self, hub: LiveHub, subscription: Subscription,
                 heartbeat_s: float = HEARTBEAT_S, first: bytes | None = None):
        self.hub = hub
        self.subscription = subscription
        self.heartbeat_s = heartbeat_s
        self.first = first
        self._frames = self._generate()

    def __iter__(self):
        return self._frames

    def _generate(self):
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        if self.first:
            yield self.first
        while True:
            try:
                frame = self.subscription.get(timeout=self.heartbeat_s)
            except Empty:
                yield b": ping\n\n"
                continue
            if frame is CLOSED:
                return
            yield frame

    def close(self):
        self.hub.unsubscribe(self.subscription)
        self._frames.close()


def stream_response(hub: LiveHub, subscription: Subscription,
                    first: bytes | None = None) -> Response:
    response = Response(EventStream(hub, subscription, first=first),
                        mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


class ScreenPopRoutes:
    live = LiveHub()
    screen_pop_caller = Caller()
    live_payroll = ApiRpcProxy("payroll")

    @event_stream("GET", "/api/v1/screen-pop", query=ScreenPopQuery,
                  summary="Всплывающая карточка звонящего (Server-Sent Events)",
                  tags=["telephony"])
    def screen_pop_stream(self, request, query):
        """A `text/event-stream` of the caller's ringing calls: `event: ringing` with `call_key`,
        `pbx`, `direction`, `external_number`, `at` and the client summary (`client`: `id`,
        `short_name`, `inn`, `owner_name`, `link`), or `unknown: true` with `hint` and
        `create_lead` (the request that creates a lead for the number). `: ping` every 15 s.
        The token may come as `?access_token=` (EventSource cannot send headers)."""
        subscription = self.live.subscribe(self.screen_pop_caller.identity, SCREEN_POP.name)
        return stream_response(self.live, subscription)

    @event_stream("GET", "/api/v1/kpi/stream", query=ScreenPopQuery,
                  summary="Живые KPI менеджера (Server-Sent Events)", tags=["payroll"])
    def kpi_stream(self, request, query):
        """A `text/event-stream` of the caller's KPI widget: `event: kpi` first with the current
        month's widget, then again within a second whenever payroll applies a fact or a plan
        that moves it (`user_id`, `month`, `kpis`: plan, fact, fulfilment per KPI,
        `weighted_fulfilment`, `projected_pay`, `next_tier`: how much more shipment reaches the
        next bonus tier, `cause`). `: ping` every 15 s. The token may come as `?access_token=`."""
        identity = self.screen_pop_caller.identity
        subscription = self.live.subscribe(identity, KPI.name)  # before reading: nothing lost
        first = None
        try:
            with eventlet.Timeout(SNAPSHOT_TIMEOUT_S):
                first = sse_frame("kpi", {**self.live_payroll.kpi_widget(),
                                          "cause": "snapshot"})
        except (eventlet.Timeout, Exception) as exc:  # noqa: BLE001 - payroll down: the live frames still come
            log.warning("kpi stream: no snapshot for %s: %r", identity.user_id, exc)
        return stream_response(self.live, subscription, first)

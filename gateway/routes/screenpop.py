"""Screen pop stream of the gateway: a mixin of ``GatewayService``.

``GET /api/v1/screen-pop`` is a Server-Sent Events stream of the caller's ringing calls (see
``gateway/screenpop.py``)::

    const es = new EventSource("/api/v1/screen-pop?access_token=" + token);
    es.addEventListener("ringing", (e) => show(JSON.parse(e.data)));

The token comes as usual in ``Authorization: Bearer``; a browser's ``EventSource`` cannot send
headers, so ``?access_token=`` is taken too (checked by the same ``Authority``; keep it out of
access logs). Each ring is ``event: ringing`` with the call and the client summary, or
``"unknown": true`` with the request that creates a lead; ``: ping`` comments every 15 s keep
proxies from closing an idle stream.

Only the start of the request runs in a nameko worker (the token, the subscription); the worker is
over when the response starts, and the stream's body runs in the web server's connection thread,
waiting on the hub's queue only — an open browser holds no worker slot. A client that goes away is
noticed at the next write (a ping at the latest) and unsubscribed.
"""

from __future__ import annotations

from eventlet.queue import Empty
from marshmallow import EXCLUDE, Schema, fields
from werkzeug.wrappers import Response

from crm_platform.identity import Caller

from ..api import ApiEndpoint
from ..screenpop import CLOSED, RingingHub, Subscription

HEARTBEAT_S = 15.0
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
            token = request.args.get("access_token")
            if token:
                environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        # eventlet's WSGI server buffers the body into 4 KiB writes by default.
        environ["eventlet.minimum_write_chunk_size"] = 0
        return super().handle_request(request)


event_stream = EventStreamEndpoint.decorator


class EventStream:
    """The body of an SSE response. ``close`` (called by the WSGI server when the response ends,
    the client went away or the body was never started) unsubscribes."""

    def __init__(self, hub: RingingHub, subscription: Subscription,
                 heartbeat_s: float = HEARTBEAT_S):
        self.hub = hub
        self.subscription = subscription
        self.heartbeat_s = heartbeat_s
        self._frames = self._generate()

    def __iter__(self):
        return self._frames

    def _generate(self):
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
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


class ScreenPopRoutes:
    screen_pop = RingingHub()
    screen_pop_caller = Caller()

    @event_stream("GET", "/api/v1/screen-pop", query=ScreenPopQuery,
                  summary="Всплывающая карточка звонящего (Server-Sent Events)",
                  tags=["telephony"])
    def screen_pop_stream(self, request, query):
        """A `text/event-stream` of the caller's ringing calls: `event: ringing` with `call_key`,
        `pbx`, `direction`, `external_number`, `at` and the client summary (`client`: `id`,
        `short_name`, `inn`, `owner_name`, `link`), or `unknown: true` with `hint` and
        `create_lead` (the request that creates a lead for the number). `: ping` every 15 s.
        The token may come as `?access_token=` (EventSource cannot send headers)."""
        subscription = self.screen_pop.subscribe(self.screen_pop_caller.identity)
        response = Response(EventStream(self.screen_pop, subscription),
                            mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        return response

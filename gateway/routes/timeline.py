"""The client card's timeline (calls with their recordings, e-mails, 1C documents, stage moves and
tasks of the client's deals, deliveries, notes) and notes on the client: a mixin of
``GatewayService``. The deals service keeps the feed and decides who may see it (the client's
owner, the department's head, the director; 403 otherwise)."""

from __future__ import annotations

from ..api import ApiRpcProxy, api
from ..schemas_timeline import (
    ClientNoteSchema,
    ClientTimelineItemSchema,
    ClientTimelinePageSchema,
    ClientTimelineQuery,
)

TAGS = ["clients"]


class ClientTimelineRoutes:
    timeline_rpc = ApiRpcProxy("deals")

    @api("GET", "/api/v1/clients/<uuid:client_id>/timeline", query=ClientTimelineQuery,
         response=ClientTimelinePageSchema, summary="Лента событий клиента, постранично",
         tags=TAGS)
    def client_timeline(self, request, client_id, query):
        """Newest first; ``kinds`` (comma list) keeps only those kinds; pass ``next_cursor`` as
        ``cursor`` for the next page. A call with a recording has ``data.recording``: the path
        that plays it (``/api/v1/calls/<id>/recording``)."""
        kinds = [k.strip() for k in query["kinds"].split(",") if k.strip()] \
            if query.get("kinds") else None
        return self.timeline_rpc.client_timeline(str(client_id), limit=query["limit"],
                                                 cursor=query.get("cursor"), kinds=kinds)

    @api("POST", "/api/v1/clients/<uuid:client_id>/notes", body=ClientNoteSchema,
         response=ClientTimelineItemSchema, status=201, idempotent=True,
         summary="Добавить заметку в ленту клиента", tags=TAGS)
    def add_client_note(self, request, client_id, body):
        return 201, self.timeline_rpc.add_client_note(str(client_id), body["text"])

"""Call recording routes of the gateway: a mixin of ``GatewayService``.

The gateway never carries the audio: it asks the telephony service for a short-lived signed link
(which checks that the caller may see the call's client) and redirects the browser to the PBX's
web server or storage proxy, which checks the token. ``?format=json`` returns the link instead.
"""

from __future__ import annotations

from werkzeug.utils import redirect

from ..api import ApiRpcProxy, api

TAGS = ["telephony"]


class RecordingRoutes:
    recordings_rpc = ApiRpcProxy("telephony")

    @api("GET", "/api/v1/calls/<uuid:call_id>/recording",
         summary="Запись разговора (переадресация на короткоживущую ссылку)", tags=TAGS)
    def call_recording(self, request, call_id):
        """302 to the recording at the PBX (a link valid a few minutes); ``?format=json``:
        ``{"url", "expires_at"}``. 404 without a recording or without access to the client."""
        link = self.recordings_rpc.recording_link(str(call_id))
        if request.args.get("format") == "json":
            return link
        response = redirect(link["url"], code=302)
        response.headers["Cache-Control"] = "no-store"
        return response

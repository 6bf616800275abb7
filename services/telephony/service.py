"""nameko entrypoints of the telephony service: calls registered by themselves.

* the directory's people with their extensions and its departments, replicated (``staff``,
  ``departments``);
* the Asterisk AMI client (``ami_client``): finished calls registered, ringing announced;
* the Mango Office and Zadarma webhooks as RPCs the gateway exposes (``webhooks``);
* registration, matching and effects (``registration``): ``call_registered`` for every client
  call, ``call_ringing`` for the screen pop, a lead for an unknown inbound number;
* links to call recordings, short-lived and signed, for those who may see the client
  (``recordings``).

Config: ``TELEPHONY_SERVICE_USER_ID`` (the integration identity it asks clients and deals as),
the ``AMI_*`` keys (see ``ami_client``), ``MANGO_API_KEY``, ``MANGO_API_SALT``,
``ZADARMA_SECRET``, ``ZADARMA_ALLOWED_IPS`` ("185.45.152.40/30"; empty: any address),
``CLOUD_PBX_TIMEZONE`` ("Europe/Moscow"), ``RECORDINGS_BASE_URL``, ``RECORDINGS_SECRET``,
``RECORDINGS_TTL_SECONDS`` (300).
"""

from __future__ import annotations

import logging

from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy

from crm_platform.errors import register_remote_errors
from crm_platform.organisation import OrganisationReplica
from crm_platform.service import PersistentService

from .ami_client import ami_calls
from .domain.calls import FinishedCall, Ringing
from .models import departments, staff
from .privacy import PrivacyEntrypoints
from .recordings import Recordings
from .registration import Registration
from .webhooks import CloudWebhooks

log = logging.getLogger(__name__)

# The deals service's refusals (422, 409) come back as the same classes, so that a lead it
# refuses does not stop the call from being registered.
register_remote_errors()


class TelephonyService(OrganisationReplica, Registration, CloudWebhooks, Recordings,
                       PrivacyEntrypoints, PersistentService):
    name = "telephony"
    staff_table = staff
    departments_table = departments

    config = Config()
    clients_rpc = RpcProxy("clients")
    deals_rpc = RpcProxy("deals")

    # -- the organisation: the directory replica keeps each user's extension too ------------------
    def staff_values(self, payload: dict) -> dict:
        return {**super().staff_values(payload),
                "extension": (payload.get("extension") or "").strip() or None}

    # -- Asterisk ---------------------------------------------------------------------------------
    @ami_calls
    def handle_ami_calls(self, items: list) -> int:
        """What the AMI assembler produced, in order: ringing announced, finished calls
        registered (each in its own transaction). Returns how many calls were new."""
        registered = 0
        for item in items:
            with self.db.session() as session:
                if isinstance(item, FinishedCall):
                    registered += self.register(session, item) is not None
                elif isinstance(item, Ringing):
                    self.announce_ringing(session, item)
        return registered

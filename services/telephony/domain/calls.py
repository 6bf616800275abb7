"""What the telephony service knows of a call, whatever PBX it came from.

The adapters (Asterisk AMI, Mango Office and Zadarma webhooks) turn their event streams into
these plain objects: ``Ringing`` while a call rings at an extension (for the screen pop), and one
``FinishedCall`` when the call is over (registered once, keyed by ``key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

DIRECTIONS = ("inbound", "outbound", "internal")
DISPOSITIONS = ("answered", "no_answer", "busy", "failed", "cancelled")


@dataclass(frozen=True)
class Ringing:
    """A call ringing at one of our extensions now."""

    key: str                       # the call's key at its PBX (see FinishedCall.key)
    pbx: str                       # asterisk | mango | zadarma
    extension: str                 # the extension that rings
    external_number: str | None    # E.164 of the other side when known
    direction: str                 # inbound | outbound | internal
    at: datetime                   # aware


@dataclass(frozen=True)
class FinishedCall:
    key: str                       # Linkedid (AMI), entry_id (Mango), pbx_call_id (Zadarma)
    pbx: str
    direction: str                 # inbound | outbound | internal
    our_number: str | None         # the DID dialled (inbound) or used (outbound), E.164
    external_number: str | None    # E.164 of the client side; None for internal calls
    external_raw: str | None       # as the PBX gave it, when it could not be normalised
    rang: tuple[str, ...]          # every extension that rang (a ring group rings several)
    answered_by: str | None        # the extension that answered; None when missed
    started_at: datetime           # aware
    answered_at: datetime | None
    ended_at: datetime
    duration_seconds: int          # start to end
    talk_seconds: int              # answer to end (0 when not answered)
    disposition: str               # answered | no_answer | busy | failed | cancelled
    recording: str | None = None   # path or id of the recording at the PBX
    extra: dict = field(default_factory=dict)   # PBX-specific details kept for support

    @property
    def answered(self) -> bool:
        return self.answered_by is not None and self.talk_seconds >= 0 and \
            self.disposition == "answered"

"""Asterisk AMI (Asterisk 12+ event model): framing and call assembly (INTEGRATION-FORMATS §2.1).

Pure code: no sockets. The TCP client feeds bytes to an ``AmiFramer`` and the blocks it returns to
a ``CallAssembler``, which returns ``Ringing`` (screen pop) and ``FinishedCall`` objects.

Framing
    ``Key: Value`` lines ending in CRLF (a bare LF is tolerated), a block ends with an empty line.
    The ``Asterisk Call Manager/x.y.z`` banner line is taken out of the stream (``framer.banner``).
    A repeated key (``ChanVariable``, ``Variable`` in some responses) keeps its *last* value in
    the dict; every value in order is available through ``block.getall(key)``. A line without
    ``:`` (old command output) is ignored. A block larger than ``max_block`` bytes (64 KB) or a
    line that never ends raises ``AmiProtocolError``: the connection should be dropped and a new
    framer used after reconnecting.

Calls
    Channels are tracked by ``Uniqueid``, calls by ``Linkedid`` (the Uniqueid of the oldest
    channel: the call key). ``Cdr`` events carry no Linkedid: they are attached through their
    ``UniqueID`` (party A); a ``LinkedID`` field added through ``cdr_manager.conf`` mappings is
    used when present.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from services.telephony.domain.calls import FinishedCall, Ringing
from services.telephony.domain.phones import MAX_EXTENSION_DIGITS, normalise

PBX = "asterisk"
MAX_BLOCK = 64 * 1024
# A call's key is stored as VARCHAR(200) (models.calls.key): Asterisk's ids are ~20 characters,
# so a longer one is garbage and its block is ignored rather than failing the registration.
MAX_ID_LENGTH = 200
_ID_FIELDS = ("Linkedid", "Uniqueid", "DestLinkedid", "DestUniqueid", "UniqueID", "LinkedID")
BANNER_PREFIX = "Asterisk Call Manager/"


class AmiProtocolError(ValueError):
    """The byte stream is not AMI (or is abusive): drop the connection."""


# ---------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------


class AmiBlock(dict):
    """One AMI block: ``Key → last value``; ``getall(key)`` gives every value of a repeated key."""

    __slots__ = ("_multi",)

    def __init__(self, pairs=()):
        super().__init__()
        self._multi: dict[str, list[str]] = {}
        for k, v in pairs:
            self.add(k, v)

    def add(self, key: str, value: str) -> None:
        self[key] = value
        self._multi.setdefault(key, []).append(value)

    def getall(self, key: str) -> list[str]:
        return list(self._multi.get(key, ()))


class AmiFramer:
    """Bytes in (any split), complete blocks out."""

    def __init__(self, max_block: int = MAX_BLOCK):
        self.max_block = max_block
        self.banner: str | None = None
        self._buf = bytearray()
        self._block = AmiBlock()
        self._block_size = 0
        self._broken = False

    @property
    def pending(self) -> bool:
        """True when a partial block or line is buffered (an EOF now would cut it)."""
        return bool(self._buf) or bool(self._block)

    def feed(self, data: bytes) -> list[AmiBlock]:
        if self._broken:
            raise AmiProtocolError("framer already failed; use a new one after reconnecting")
        self._buf += data
        out: list[AmiBlock] = []
        start = 0
        try:
            while True:
                nl = self._buf.find(b"\n", start)
                if nl < 0:
                    break
                raw = bytes(self._buf[start:nl])
                start = nl + 1
                self._line(raw, out)
        finally:
            del self._buf[:start]
        if self._block_size + len(self._buf) > self.max_block:
            self._broken = True
            raise AmiProtocolError(
                f"AMI block or line over {self.max_block} bytes without an end"
            )
        return out

    def _line(self, raw: bytes, out: list[AmiBlock]) -> None:
        self._block_size += len(raw) + 1
        if self._block_size > self.max_block:
            self._broken = True
            raise AmiProtocolError(f"AMI block over {self.max_block} bytes")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        line = raw.decode("utf-8", errors="replace")
        if not line.strip():
            if self._block:
                out.append(self._block)
            self._block = AmiBlock()
            self._block_size = 0
            return
        if not self._block and line.startswith(BANNER_PREFIX):
            self.banner = line.strip()
            self._block_size = 0
            return
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            return
        self._block.add(key.strip(), value.strip())


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

_UNKNOWN = {"", "<unknown>", "<Unknown>"}
_MAX_EPOCH = 253402214400.0      # 9999-12-31T00:00Z: the last day a datetime can hold


def _v(block: dict, key: str) -> str | None:
    value = block.get(key)
    return None if value is None or value in _UNKNOWN else value


def _float(value: str | None) -> float | None:
    """A number of seconds since the epoch, or None: "nan", "inf" and values no datetime can
    hold (garbage from the stream) are treated as absent instead of crashing the assembler."""
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    if number is None or not (0 <= number < _MAX_EPOCH):
        return None
    return number


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def channel_peer(name: str | None) -> str | None:
    """``PJSIP/101-0000002a`` → ``101``; ``Local/101@from-internal-0000000c;1`` → ``101``;
    ``PJSIP/mts-trunk-00000010`` → ``mts-trunk``."""
    if not name or "/" not in name:
        return None
    rest = name.split("/", 1)[1]
    rest = re.sub(r";[12]$", "", rest)
    if "-" in rest:
        rest = rest.rsplit("-", 1)[0]
    return rest.split("@", 1)[0] or None


def channel_extension(name: str | None) -> str | None:
    """The extension of an extension channel (its peer is 1 to 5 digits), else None."""
    peer = channel_peer(name)
    if peer and peer.isdigit() and len(peer) <= MAX_EXTENSION_DIGITS:
        return peer
    return None


_DIAL_STATUS = {
    "NOANSWER": "no_answer",
    "BUSY": "busy",
    "CANCEL": "cancelled",
}
_CDR_DISPOSITION = {
    "ANSWERED": "answered",
    "NO ANSWER": "no_answer",
    "BUSY": "busy",
    "FAILED": "failed",
    "CONGESTION": "failed",
}


class _Bounded:
    """An insertion-ordered set that forgets its oldest members past ``size``."""

    def __init__(self, size: int):
        self.size = size
        self._d: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> None:
        self._d[item] = None
        self._d.move_to_end(item)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def __contains__(self, item) -> bool:
        return item in self._d

    def __len__(self) -> int:
        return len(self._d)


@dataclass
class _Chan:
    uniqueid: str
    name: str | None
    first_context: str | None
    first_exten: str | None
    caller_num: str | None
    connected_num: str | None
    created: float | None
    seen_new: bool = False
    hung_up: bool = False
    bridged_at: float | None = None
    cause: str | None = None

    @property
    def extension(self) -> str | None:
        return channel_extension(self.name)


@dataclass
class _Call:
    key: str
    channels: dict[str, _Chan] = field(default_factory=dict)
    dials: dict[str, str | None] = field(default_factory=dict)     # extension → DialStatus
    dial_dests: dict[str, str | None] = field(default_factory=dict)  # dest uniqueid → chan name
    trunk_dials: dict[str, str | None] = field(default_factory=dict)  # dest uniqueid → status
    trunk_dialstring: str | None = None
    trunk_connected: str | None = None    # the caller ID presented on an outbound trunk leg
    answered_by: str | None = None
    answered_at: float | None = None
    trunk_answered: bool = False
    rung: list[str] = field(default_factory=list)
    recording: str | None = None
    cdrs: list[AmiBlock] = field(default_factory=list)
    first_ts: float | None = None
    last_activity: float | None = None
    last_hangup: float | None = None
    gap: bool = False

    @property
    def root(self) -> _Chan | None:
        if self.key in self.channels:
            return self.channels[self.key]
        return next(iter(self.channels.values()), None)

    @property
    def all_hung_up(self) -> bool:
        return bool(self.channels) and all(c.hung_up for c in self.channels.values())


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------


class CallAssembler:
    """AMI blocks in, ``Ringing`` and ``FinishedCall`` out.

    A call is final

    * at once, when every channel seen of its Linkedid has hung up, its first channel was seen
      from its ``Newchannel`` (no reconnect gap) and a ``Cdr`` has arrived for every leg dialled
      (one Cdr per A/B pair: a ring group of three extensions waits for three Cdrs);
    * otherwise ``grace_seconds`` (in event time: the ``Timestamp`` of the latest event, or the
      ``now`` given to ``flush``) after its last hangup or Cdr, for Cdr-less setups, calls seen
      only in part, and Cdrs that never come (``unanswered = no`` in cdr.conf);
    * or, with what is known and ``extra['incomplete'] = True``, ``stale_seconds`` after its last
      event (its end was lost in a reconnect gap).

    ``feed`` itself finalises calls that fell due by the event clock; the service should also call
    ``flush(time.time())`` every few seconds for a quiet PBX. Finished keys (and their channels'
    Uniqueids) are remembered, bounded by ``remember``, so a key is emitted at most once while it
    is remembered; events of a finished call are ignored.
    """

    def __init__(
        self,
        trunk_contexts: set[str],
        our_numbers: set[str] | None = None,
        tz: tzinfo | str = "Europe/Moscow",
        *,
        grace_seconds: float = 5.0,
        stale_seconds: float = 12 * 3600,
        remember: int = 10_000,
    ):
        self.trunk_contexts = set(trunk_contexts)
        self.our_numbers = {
            normalise(n).e164 or n for n in (our_numbers or ())
        }
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.grace_seconds = grace_seconds
        self.stale_seconds = stale_seconds
        self._calls: dict[str, _Call] = {}
        self._uid_to_key: dict[str, str] = {}
        self._finished = _Bounded(remember)
        self._finished_uids = _Bounded(remember * 4)
        self._clock: float | None = None
        self._last_due_check: float | None = None

    # -- public --------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._calls)

    @property
    def clock(self) -> float | None:
        """The latest event ``Timestamp`` seen (epoch seconds)."""
        return self._clock

    def feed(self, block: dict) -> list[Ringing | FinishedCall]:
        event = block.get("Event")
        if not event:
            return []
        if any(len(block.get(name) or "") > MAX_ID_LENGTH for name in _ID_FIELDS):
            return []
        ts = _float(block.get("Timestamp"))
        if ts is not None and (self._clock is None or ts > self._clock):
            self._clock = ts
        out: list[Ringing | FinishedCall] = []
        if event == "Cdr":
            self._on_cdr(block, ts, out)
        elif block.get("Linkedid") or block.get("DestLinkedid"):
            self._on_channel_event(event, block, ts, out)
        if self._clock is not None and (
            self._last_due_check is None or self._clock - self._last_due_check >= 1.0
        ):
            self._last_due_check = self._clock
            out.extend(self._due(self._clock))
        return out

    def flush(self, now: float | datetime | None = None) -> list[FinishedCall]:
        """Finalise the calls due at ``now`` (epoch seconds or an aware datetime; default: the
        latest event timestamp)."""
        if isinstance(now, datetime):
            now = now.timestamp()
        if now is None:
            now = self._clock
        if now is None:
            return []
        return self._due(now)

    def note_reconnect(self) -> None:
        """Events may have been lost: calls in progress are finalised only after the grace."""
        for call in self._calls.values():
            call.gap = True

    def reconcile(self, live_uniqueids: set[str], now: float | None = None) -> None:
        """After a reconnect, with the Uniqueids of ``CoreShowChannels``: channels that are no
        longer up are taken as hung up (their Hangup was lost); the grace then finalises them."""
        now = self._clock if now is None else now
        for call in self._calls.values():
            call.gap = True
            for chan in call.channels.values():
                if not chan.hung_up and chan.uniqueid not in live_uniqueids:
                    chan.hung_up = True
                    call.last_hangup = call.last_activity = now

    # -- events --------------------------------------------------------------------------------

    def _snapshot(self, call: _Call, block: dict, prefix: str, ts: float | None,
                  is_new: bool = False) -> _Chan | None:
        uid = _v(block, prefix + "Uniqueid")
        if not uid:
            return None
        chan = call.channels.get(uid)
        if chan is None:
            chan = _Chan(
                uniqueid=uid,
                name=_v(block, prefix + "Channel"),
                first_context=_v(block, prefix + "Context"),
                first_exten=_v(block, prefix + "Exten"),
                caller_num=_v(block, prefix + "CallerIDNum"),
                connected_num=_v(block, prefix + "ConnectedLineNum"),
                created=ts if is_new else None,
                seen_new=is_new,
            )
            call.channels[uid] = chan
            self._uid_to_key[uid] = call.key
        else:
            chan.name = _v(block, prefix + "Channel") or chan.name
            chan.connected_num = _v(block, prefix + "ConnectedLineNum") or chan.connected_num
            if chan.caller_num is None:
                chan.caller_num = _v(block, prefix + "CallerIDNum")
        return chan

    def _call_for(self, key: str, ts: float | None) -> _Call | None:
        if key in self._finished:
            return None
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(key=key, first_ts=ts)
        if ts is not None:
            call.last_activity = ts
            if call.first_ts is None:
                call.first_ts = ts
        return call

    def _on_channel_event(self, event: str, block: dict, ts: float | None, out: list) -> None:
        key = _v(block, "Linkedid") or _v(block, "DestLinkedid")
        uid = _v(block, "Uniqueid")
        if key is None or (uid and uid in self._finished_uids):
            return
        call = self._call_for(key, ts)
        if call is None:
            return
        chan = self._snapshot(call, block, "", ts, is_new=event == "Newchannel")

        if event == "Newstate":
            if chan and block.get("ChannelStateDesc") == "Ringing" and chan.extension and \
                    chan.uniqueid != call.key:
                ring = self._ringing(call, chan, ts)
                if ring:
                    out.append(ring)
        elif event == "DialBegin":
            dest = self._snapshot(call, block, "Dest", ts)
            if dest is not None:
                ext = dest.extension
                if ext:
                    call.dials.setdefault(ext, None)
                    call.dial_dests[dest.uniqueid] = dest.name
                else:
                    call.trunk_dials.setdefault(dest.uniqueid, None)
                    call.dial_dests[dest.uniqueid] = dest.name
                    call.trunk_dialstring = call.trunk_dialstring or _v(block, "DialString")
                    call.trunk_connected = call.trunk_connected or dest.connected_num
        elif event == "DialEnd":
            dest = self._snapshot(call, block, "Dest", ts)
            status = (block.get("DialStatus") or "").upper() or None
            if dest is not None and status:
                ext = dest.extension
                if ext:
                    if call.dials.get(ext) != "ANSWER":
                        call.dials[ext] = status
                    if status == "ANSWER" and call.answered_by is None:
                        call.answered_by = ext
                        call.answered_at = ts
                else:
                    call.trunk_dials[dest.uniqueid] = status
                    if status == "ANSWER":
                        call.trunk_answered = True
                        call.answered_at = call.answered_at or ts
        elif event == "BridgeEnter":
            if chan is not None and chan.bridged_at is None:
                chan.bridged_at = ts
        elif event == "VarSet":
            if block.get("Variable") == "MIXMONITOR_FILENAME" and _v(block, "Value"):
                call.recording = block["Value"]
        elif event == "Hangup":
            if chan is not None:
                chan.hung_up = True
                chan.cause = block.get("Cause-txt") or block.get("Cause")
            call.last_hangup = ts if ts is not None else call.last_hangup
            self._maybe_finish(call, out)

    def _on_cdr(self, block: dict, ts: float | None, out: list) -> None:
        uid = _v(block, "UniqueID")
        if uid and uid in self._finished_uids:
            return
        key = _v(block, "LinkedID") or _v(block, "Linkedid") or self._uid_to_key.get(uid or "") \
            or uid
        if not key:
            return
        call = self._call_for(key, ts)
        if call is None:
            return
        call.cdrs.append(AmiBlock(block.items()))
        # a Cdr is posted once its A/B pair has hung up
        names = {_v(block, "Channel"), _v(block, "DestinationChannel")} - {None}
        for chan in call.channels.values():
            if chan.name in names and not chan.hung_up:
                chan.hung_up = True
        self._maybe_finish(call, out)

    def _ringing(self, call: _Call, chan: _Chan, ts: float | None) -> Ringing | None:
        ext = chan.extension
        if ext is None or ext in call.rung:
            return None
        call.rung.append(ext)
        direction = self._direction(call)
        external = None
        if direction == "inbound":
            root = call.root
            raw = root.caller_num if root and root.uniqueid != chan.uniqueid else None
            external = normalise(raw or chan.connected_num).e164
        elif direction == "outbound":
            external = self._outbound_external(call)[0]
        at = datetime.fromtimestamp(ts, UTC) if ts is not None else datetime.now(UTC)
        return Ringing(key=call.key, pbx=PBX, extension=ext, external_number=external,
                       direction=direction, at=at)

    # -- finalisation --------------------------------------------------------------------------

    def _complete(self, call: _Call) -> bool:
        root = call.channels.get(call.key)
        if call.gap or root is None or not root.seen_new or not call.cdrs:
            return False
        if not call.all_hung_up:
            return False
        have = {_v(c, "DestinationChannel") for c in call.cdrs}
        return all(name in have for name in call.dial_dests.values())

    def _maybe_finish(self, call: _Call, out: list) -> None:
        if self._complete(call):
            out.append(self._finish(call))

    def _due(self, now: float) -> list[FinishedCall]:
        done = []
        for call in list(self._calls.values()):
            last = call.last_activity
            idle = float("inf") if last is None else now - last
            if (call.all_hung_up or call.cdrs) and idle >= self.grace_seconds:
                done.append(self._finish(call))
            elif idle >= self.stale_seconds:
                done.append(self._finish(call, incomplete=True))
        return done

    def _finish(self, call: _Call, incomplete: bool = False) -> FinishedCall:
        self._calls.pop(call.key, None)
        self._finished.add(call.key)
        for uid in call.channels:
            self._finished_uids.add(uid)
            self._uid_to_key.pop(uid, None)
        for cdr in call.cdrs:
            if _v(cdr, "UniqueID"):
                self._finished_uids.add(cdr["UniqueID"])
        return self._build(call, incomplete)

    # -- building ------------------------------------------------------------------------------

    def _cdr_time(self, value: str | None) -> datetime | None:
        if not value:
            return None
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.tz)
        except ValueError:
            return None

    @staticmethod
    def _ts(value: float | None) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    def _is_external(self, raw: str | None) -> bool:
        n = normalise(raw)
        return n.extension is None and bool(n.e164 or (raw and len(raw) > MAX_EXTENSION_DIGITS))

    def _direction(self, call: _Call) -> str:
        root = call.root
        if root is not None:
            if root.first_context in self.trunk_contexts:
                return "inbound"
            if root.extension:
                if call.trunk_dials or self._is_external(root.first_exten):
                    return "outbound"
                return "internal"
            return "inbound"
        if call.cdrs:
            a = call.cdrs[0]
            if _v(a, "DestinationContext") in self.trunk_contexts:
                return "inbound"
            if channel_extension(_v(a, "Channel")):
                dests = [_v(c, "DestinationChannel") for c in call.cdrs]
                if any(d and not channel_extension(d) for d in dests) or \
                        self._is_external(_v(a, "Destination")):
                    return "outbound"
                return "internal"
        return "inbound"

    def _our_number(self, candidates: list[str | None]) -> str | None:
        for raw in candidates:
            e164 = normalise(raw).e164
            if e164 and (not self.our_numbers or e164 in self.our_numbers):
                return e164
        if len(self.our_numbers) == 1:
            return next(iter(self.our_numbers))
        for raw in candidates:
            if normalise(raw).e164:
                return normalise(raw).e164
        return None

    def _outbound_external(self, call: _Call) -> tuple[str | None, str | None]:
        root = call.root
        raws = [root.first_exten if root else None]
        if call.trunk_dialstring:
            raws.append(call.trunk_dialstring.split("@", 1)[0].split("/")[-1])
        raws += [_v(c, "Destination") for c in call.cdrs]
        for raw in raws:
            if normalise(raw).e164:
                return normalise(raw).e164, None
        first = next((r for r in raws if r), None)
        return None, first

    def _build(self, call: _Call, incomplete: bool) -> FinishedCall:
        root = call.root
        direction = self._direction(call)
        cdrs = call.cdrs

        # numbers
        our_number = external = external_raw = None
        if direction == "inbound":
            raw = (root.caller_num if root else None) or next(
                (_v(c, "Source") for c in cdrs if _v(c, "Source")), None)
            n = normalise(raw)
            external = n.e164
            external_raw = raw if (raw and not n.e164) else None
            our_number = self._our_number(
                [root.first_exten if root else None] + [_v(c, "Destination") for c in cdrs])
        elif direction == "outbound":
            external, external_raw = self._outbound_external(call)
            our_number = self._our_number(
                [call.trunk_connected] + [_v(c, "Source") for c in cdrs])

        # extensions
        caller_ext = root.extension if root else (
            channel_extension(_v(cdrs[0], "Channel")) if cdrs else None)
        rang = list(call.dials)
        for ext in call.rung:
            if ext not in rang:
                rang.append(ext)
        for c in cdrs:
            ext = channel_extension(_v(c, "DestinationChannel"))
            if ext and ext not in rang:
                rang.append(ext)
        if direction == "internal" and caller_ext in rang:
            rang.remove(caller_ext)

        answered_cdr = next(
            (c for c in cdrs if c.get("Disposition") == "ANSWERED" and
             _v(c, "DestinationChannel")), None)
        answered_by: str | None = None
        if direction == "outbound":
            if caller_ext:
                rang = [caller_ext]
            if call.trunk_answered or answered_cdr is not None or any(
                    ch.bridged_at is not None and ch.extension is None
                    for ch in call.channels.values()):
                answered_by = caller_ext
        else:
            answered_by = call.answered_by
            if answered_by is None and answered_cdr is not None and not call.dials:
                # no Dial events seen (started mid-stream): trust the Cdr
                answered_by = channel_extension(_v(answered_cdr, "DestinationChannel"))
            if answered_by is None and not call.dials:
                answered_by = next(
                    (ch.extension for ch in call.channels.values()
                     if ch.bridged_at is not None and ch.extension and ch.extension != caller_ext
                     and ch.uniqueid != call.key), None)
            if answered_by and answered_by not in rang:
                rang.append(answered_by)
        if answered_cdr is not None and answered_by is not None and direction != "outbound":
            # the Cdr of the leg that answered, if any
            answered_cdr = next(
                (c for c in cdrs if c.get("Disposition") == "ANSWERED" and
                 channel_extension(_v(c, "DestinationChannel")) == answered_by), answered_cdr)

        # disposition
        if answered_by is not None:
            disposition = "answered"
        else:
            statuses = [s for s in call.dials.values() if s] + \
                [s for s in call.trunk_dials.values() if s]
            disposition = None
            for status, mapped in _DIAL_STATUS.items():   # in order of precedence
                if status in statuses:
                    disposition = mapped
                    break
            if disposition is None and statuses:
                disposition = "failed"
            if disposition is None:
                found = {_CDR_DISPOSITION.get((c.get("Disposition") or "").upper()) for c in cdrs}
                for mapped in ("no_answer", "busy", "failed"):
                    if mapped in found:
                        disposition = mapped
                        break
            disposition = disposition or "no_answer"

        # times
        starts = [t for t in (self._cdr_time(c.get("StartTime")) for c in cdrs) if t]
        ends = [t for t in (self._cdr_time(c.get("EndTime")) for c in cdrs) if t]
        fallback_start = (root.created if root and root.created is not None else None) \
            or call.first_ts
        started_at = min(starts) if starts else self._ts(fallback_start)
        ended_at = max(ends) if ends else self._ts(call.last_hangup or call.last_activity)
        now = datetime.now(UTC)
        started_at = started_at or ended_at or now
        ended_at = ended_at or started_at
        if len(cdrs) == 1 and starts and ends:
            duration = _int(cdrs[0].get("Duration"))
        else:
            duration = max(0, int((ended_at - started_at).total_seconds()))

        answered_at: datetime | None = None
        talk = 0
        if disposition == "answered":
            if answered_cdr is not None and self._cdr_time(answered_cdr.get("AnswerTime")):
                answered_at = self._cdr_time(answered_cdr.get("AnswerTime"))
                talk = _int(answered_cdr.get("BillableSeconds"))
            else:
                bridged = [ch.bridged_at for ch in call.channels.values() if ch.bridged_at]
                answered_at = self._ts(call.answered_at or (min(bridged) if bridged else None))
                if answered_at is not None:
                    talk = max(0, int((ended_at - answered_at).total_seconds()))

        recording = call.recording or next(
            (_v(c, "UserField") for c in cdrs if _v(c, "UserField")), None)

        extra = {
            "linkedid": call.key,
            "channels": [ch.name for ch in call.channels.values() if ch.name],
            "dial_statuses": {k: v for k, v in call.dials.items()},
            "hangup_causes": {ch.name: ch.cause for ch in call.channels.values() if ch.cause},
            "cdr_count": len(cdrs),
            "source": "events+cdr" if (call.channels and cdrs) else
            ("cdr" if cdrs else "events"),
            "incomplete": incomplete,
        }
        if direction != "inbound" and caller_ext:
            extra["caller_extension"] = caller_ext

        return FinishedCall(
            key=call.key,
            pbx=PBX,
            direction=direction,
            our_number=our_number,
            external_number=external if direction != "internal" else None,
            external_raw=external_raw if direction != "internal" else None,
            rang=tuple(rang),
            answered_by=answered_by,
            started_at=started_at,
            answered_at=answered_at,
            ended_at=ended_at,
            duration_seconds=duration,
            talk_seconds=talk,
            disposition=disposition,
            recording=recording,
            extra=extra,
        )

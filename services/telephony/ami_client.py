"""The Asterisk AMI client: a long-lived TCP connection feeding the pure assembler.

``@ami_calls`` marks the service method that receives, in a worker (its own database sessions,
outbox and RPC proxies), the ``Ringing`` and ``FinishedCall`` objects the assembler produces, in
order. The connection lives in a managed thread of the container:

* connect to ``AMI_HOST``:``AMI_PORT`` (empty host: the client is off), log in with
  ``AMI_USERNAME``/``AMI_SECRET`` and ``Events: on``;
* feed the bytes to ``AmiFramer`` → ``CallAssembler`` (one assembler for the life of the
  container, so a call spanning a reconnect is still one call); ``flush`` every second with the
  event clock advanced by the real time since the last event (a quiet PBX still finishes its
  calls; a replayed stream is judged by its own timestamps);
* on a lost connection or a refused login, reconnect with back-off (0.5 s doubling to 30 s) and
  tell the assembler (``note_reconnect``): calls in progress then finish after the grace.

Each batch is handed to a worker and waited for; a failing worker is retried with back-off
(registration is idempotent by the call's key) before the batch is given up with an error log.
Config: ``AMI_HOST``, ``AMI_PORT`` (5038), ``AMI_USERNAME``, ``AMI_SECRET``,
``AMI_TRUNK_CONTEXTS`` ("from-trunk,from-pstn"), ``AMI_TIMEZONE`` ("Europe/Moscow"),
``AMI_OUR_NUMBERS`` (our DIDs, comma separated; optional), ``AMI_GRACE_SECONDS`` (5).
"""

from __future__ import annotations

import logging
import time

import eventlet
from eventlet.event import Event
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint

from crm_platform.config import as_float, as_int

from .domain.ami import AmiFramer, AmiProtocolError, CallAssembler

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
FLUSH_EVERY = 1.0
LOGIN_ACTION_ID = "crm-telephony-login"
WORKER_ATTEMPTS = 6


class AmiLoginFailed(Exception):
    pass


def _split(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


class AmiCalls(Entrypoint):
    def setup(self):
        config = self.container.config
        self.host = str(config.get("AMI_HOST") or "").strip()
        self.port = as_int(config.get("AMI_PORT"), 5038)
        self.username = str(config.get("AMI_USERNAME") or "")
        self.secret = str(config.get("AMI_SECRET") or "")
        self.assembler = CallAssembler(
            set(_split(config.get("AMI_TRUNK_CONTEXTS") or "from-trunk,from-pstn")),
            set(_split(config.get("AMI_OUR_NUMBERS"))),
            str(config.get("AMI_TIMEZONE") or "Europe/Moscow"),
            grace_seconds=as_float(config.get("AMI_GRACE_SECONDS"), 5.0),
        )
        self.connections = 0          # successful logins (for tests and metrics)
        self._stopping = False
        self._sock = None
        self._thread = None
        self._clock_seen: float | None = None
        self._clock_mono = 0.0

    def start(self):
        if self.host:
            self._thread = self.container.spawn_managed_thread(self._run, identifier="ami_client")

    def stop(self):
        self._stopping = True
        self._close()
        if self._thread is not None:
            self._thread.kill()
            self._thread = None

    def kill(self):
        self.stop()

    # -- the connection loop ----------------------------------------------------------------------
    def _close(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _run(self):
        delay = BACKOFF_FIRST
        attempts = 0
        while not self._stopping:
            if attempts:
                self.assembler.note_reconnect()
            attempts += 1
            try:
                with eventlet.Timeout(10):
                    self._sock = eventlet.connect((self.host, self.port))
                self._sock.sendall(self._login())
                if self._session():
                    delay = BACKOFF_FIRST         # it worked for a while: start over quickly
            except (OSError, AmiProtocolError, AmiLoginFailed, eventlet.Timeout) as exc:
                log.warning("AMI %s:%s: %s: %s", self.host, self.port, type(exc).__name__, exc)
            finally:
                self._close()
            if self._stopping:
                break
            eventlet.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _login(self) -> bytes:
        lines = ["Action: Login", f"ActionID: {LOGIN_ACTION_ID}", f"Username: {self.username}",
                 f"Secret: {self.secret}", "Events: on"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def _session(self) -> bool:
        """Read until the connection ends; True when the login was accepted."""
        framer = AmiFramer()
        logged_in = False
        self._sock.settimeout(FLUSH_EVERY)
        next_flush = time.monotonic() + FLUSH_EVERY
        while not self._stopping:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                data = None
            if data == b"":
                log.warning("AMI %s:%s closed the connection", self.host, self.port)
                return logged_in
            items = []
            for block in framer.feed(data or b""):
                if "Response" in block and not logged_in and \
                        block.get("ActionID", LOGIN_ACTION_ID) == LOGIN_ACTION_ID:
                    if block["Response"].lower() != "success":
                        raise AmiLoginFailed(block.get("Message") or block["Response"])
                    logged_in = True
                    self.connections += 1
                    continue
                items.extend(self.assembler.feed(block))
            clock = self.assembler.clock
            if clock is not None and clock != self._clock_seen:
                self._clock_seen, self._clock_mono = clock, time.monotonic()
            if time.monotonic() >= next_flush:
                next_flush = time.monotonic() + FLUSH_EVERY
                if self._clock_seen is not None:
                    items.extend(self.assembler.flush(
                        self._clock_seen + (time.monotonic() - self._clock_mono)))
            if items:
                self._dispatch(items)
        return logged_in

    # -- handing calls to a worker ----------------------------------------------------------------
    def _dispatch(self, items: list) -> None:
        delay = 1.0
        for attempt in range(1, WORKER_ATTEMPTS + 1):
            done = Event()

            def handle_result(worker_ctx, result, exc_info, done=done):
                done.send(exc_info)
                return result, exc_info

            try:
                self.container.spawn_worker(self, (items,), {}, handle_result=handle_result)
            except ContainerBeingKilled:
                return
            exc_info = done.wait()
            if exc_info is None:
                return
            log.warning("registering AMI calls failed (attempt %s): %s", attempt, exc_info[1])
            if self._stopping:
                return
            eventlet.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
        log.error("gave up registering AMI calls %s",
                  [getattr(item, "key", None) for item in items])


ami_calls = AmiCalls.decorator

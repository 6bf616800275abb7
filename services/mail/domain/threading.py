"""Threading rules (RFC 5322 §3.6.4, JWZ / RFC 5256, INTEGRATION-FORMATS §3), no database.

A message's *parent* is the last id of ``References``, else ``In-Reply-To``; its *root* the first
id of ``References``. Message-IDs keep their angle brackets and compare case-sensitively. A
message joins the thread of any message it refers to, and of any message already stored that
refers to it (a child that arrived before its parent): when both exist and differ, the threads
are merged into the oldest one, so a late parent never splits a thread. Only a message with no
usable ``References`` / ``In-Reply-To`` falls back to its normalised subject, within the same
client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Reply and forward prefixes, Latin and Russian, with optional counters: "Re:", "RE[2]:",
# "Fwd:", "FW:", "Отв:", "Пересл:", "Ответ:", "Re^2:".
_PREFIX = re.compile(
    r"^\s*(?:re|fwd?|aw|wg|отв|ответ|пересл|переслано|fw)\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*:\s*",
    re.IGNORECASE)
_TAG = re.compile(r"^\s*\[[^\]]{1,40}\]\s*")


def normalise_subject(subject: str | None) -> str:
    """The subject without reply/forward prefixes (stripped repeatedly, also behind a leading
    list tag such as ``[CRM-1a2b3c4d]``), blank space collapsed, case folded."""
    text = " ".join((subject or "").split())
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            tagged = _TAG.match(text)
            if tagged and _PREFIX.match(text[tagged.end():]):
                stripped = text[:tagged.end()] + _PREFIX.sub("", text[tagged.end():], count=1)
        if stripped == text:
            break
        text = stripped
    return text.strip().casefold()


@dataclass(frozen=True)
class ThreadRefs:
    parent: str | None
    root: str | None
    refs: tuple[str, ...]       # every id this message points at (References + In-Reply-To)

    @property
    def has_refs(self) -> bool:
        return bool(self.refs)


def thread_refs(message_id: str | None, references: tuple[str, ...] | list[str],
                in_reply_to: str | None) -> ThreadRefs:
    """Parent, root and all referenced ids of one message (its own id never counts)."""
    refs = [r for r in references if r != message_id]
    parent = refs[-1] if refs else (in_reply_to if in_reply_to != message_id else None)
    root = refs[0] if refs else parent
    every = list(dict.fromkeys(refs + ([in_reply_to] if in_reply_to and
                                       in_reply_to != message_id else [])))
    return ThreadRefs(parent=parent, root=root, refs=tuple(every))


def choose_thread(candidates: list[tuple[object, object]]) -> tuple[object | None, list]:
    """``candidates``: (thread id, its first message time) of the threads a new message belongs
    to. Returns the surviving thread (the oldest; ties by id) and the others to merge into it."""
    unique = {}
    for thread_id, started in candidates:
        if thread_id is not None and (thread_id not in unique or started < unique[thread_id]):
            unique[thread_id] = started
    if not unique:
        return None, []
    ordered = sorted(unique.items(), key=lambda item: (item[1], str(item[0])))
    return ordered[0][0], [t for t, _ in ordered[1:]]


class ThreadIndex:
    """Threads of a batch of new messages, decided in memory: the stored messages that refer to
    or are referred to by the batch are loaded first (``add_stored``), then each new message is
    ``assign``-ed in order. Threads that a message joins are merged (union-find) into the oldest;
    ``final(thread)`` is where a thread ended up, ``merged()`` the stored threads that must move.
    """

    def __init__(self):
        self._parent: dict = {}
        self.started: dict = {}
        self.stored: set = set()
        self.created: dict = {}          # new thread id -> (subject, subject key, client id)
        self._by_mid: dict = {}
        self._by_ref: dict = {}
        self._by_subject: dict = {}

    def _root(self, thread):
        while self._parent.get(thread, thread) != thread:
            thread = self._parent[thread]
        return thread

    final = _root

    def _remember(self, message_id, refs, thread) -> None:
        if message_id:
            self._by_mid.setdefault(message_id, thread)
        for ref in refs:
            self._by_ref.setdefault(ref, set()).add(thread)

    def add_stored(self, message_id, refs, thread, started_at) -> None:
        self._parent.setdefault(thread, thread)
        self.stored.add(thread)
        self.started[thread] = min(self.started.get(thread, started_at), started_at)
        self._remember(message_id, refs, thread)

    def add_subject_thread(self, client_id, subject_key, thread, started_at) -> None:
        self._parent.setdefault(thread, thread)
        self.stored.add(thread)
        self.started.setdefault(thread, started_at)
        self._by_subject.setdefault((client_id, subject_key), thread)

    def candidates(self, message_id, refs) -> set:
        found = {self._by_mid[r] for r in refs if r in self._by_mid}
        for ref in refs:
            found |= self._by_ref.get(ref, set())
        if message_id:
            found |= self._by_ref.get(message_id, set())   # children that came first
        return {self._root(t) for t in found}

    def assign(self, message_id, refs: ThreadRefs, client_id, subject: str, sent_at,
               new_id) -> object:
        """The thread of a new message (``new_id()`` makes one when it starts a thread)."""
        key = normalise_subject(subject)
        found = self.candidates(message_id, refs.refs)
        if not found and not refs.has_refs and client_id is not None and key \
                and (client_id, key) in self._by_subject:
            found = {self._root(self._by_subject[(client_id, key)])}
        if not found:
            thread = new_id()
            self._parent[thread] = thread
            self.started[thread] = sent_at
            self.created[thread] = (subject, key, client_id)
        else:
            thread, others = choose_thread([(t, self.started[t]) for t in found])
            for other in others:
                self._parent[other] = thread
            self.started[thread] = min(self.started[thread], sent_at)
        self._remember(message_id, refs.refs, thread)
        if client_id is not None and key:
            self._by_subject.setdefault((client_id, key), thread)
        return thread

    def merged(self) -> dict:
        """Stored threads that joined another: {old id: surviving id}."""
        return {t: self._root(t) for t in self.stored if self._root(t) != t}

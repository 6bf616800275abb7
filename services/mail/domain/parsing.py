"""One raw RFC 5322 message -> what the CRM keeps of it (no nameko, no database).

The standard ``email`` package with ``policy.default`` does the decoding: RFC 2047 encoded-words
(several folded ones too) and RFC 6532 raw UTF-8 headers, body charsets (utf-8, windows-1251,
koi8-r, ...) and transfer encodings (quoted-printable, base64), and attachment names, where
``get_filename()`` prefers RFC 2231 ``filename*=`` and falls back to ``name=`` (RFC 2047 words
decoded). HTML-only bodies become plain text for display and search (``html_to_text``).

The idempotency key (INTEGRATION-FORMATS §3) is the Message-ID with its angle brackets; a message
without one gets ``sha256:`` + the hex sha256 of Date + From + Subject + the first kilobyte of the
body.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

# A msg-id longer than the column that keeps it (VARCHAR(998)) or holding a NUL is no id.
MESSAGE_ID = re.compile(r"<[^<>\s\x00]{1,996}>")
MAX_ADDRESS = 320
MAX_CONTENT_TYPE = 200
MAX_SUBJECT = 998
MAX_TEXT = 200_000          # characters of body text kept for display and search
SNIPPET = 200


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None              # "<...>", as written (compared case-sensitively)
    key: str                            # the idempotency key
    subject: str
    from_address: str | None            # lower-cased
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    names: dict                         # address -> display name, as written
    sent_at: datetime | None            # the Date header, UTC
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str
    attachments: tuple[Attachment, ...]
    size: int

    @property
    def snippet(self) -> str:
        return " ".join(self.text.split())[:SNIPPET]


def message_ids(value: str | None) -> list[str]:
    """Message-IDs in a header value, in order, brackets kept (RFC 5322 msg-id)."""
    return MESSAGE_ID.findall(str(value or ""))


def normalise_address(value: str | None) -> str | None:
    """The whole address lower-cased (INTEGRATION-FORMATS §3), or None when it is no address."""
    value = (value or "").strip().strip("<>").strip().lower()
    if not value or "@" not in value or " " in value or "\x00" in value \
            or len(value) > MAX_ADDRESS:
        return None
    local, _, domain = value.rpartition("@")
    if not local or not domain or "." not in domain:
        return None
    return value


def _addresses(msg: EmailMessage, header: str, names: dict) -> list[str]:
    try:
        values = msg.get_all(header) or []
    except (ValueError, TypeError, IndexError):     # the stdlib's header parser gave up
        values = [v for k, v in msg.raw_items() if k.lower() == header.lower()]
    found = []
    for name, addr in getaddresses([str(v) for v in values]):
        norm = normalise_address(addr)
        if norm and norm not in found:
            found.append(norm)
            if name and norm not in names:
                names[norm] = _text(name)
    return found


def _header(msg: EmailMessage, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, TypeError, IndexError):   # a malformed header: the raw text instead
        raw = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
        value = raw[0] if raw else ""
    return _text(" ".join(str(value or "").split()))


def _text(value: str) -> str:
    """Text as PostgreSQL can store it: a NUL (from a broken encoded-word, a binary body sent
    as text/plain, ...) is refused by text columns, and would stop the mailbox's sync at this
    message for good."""
    return value.replace("\x00", "")


def _date(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(raw)
        if value.tzinfo is None:            # "-0000": the time is UTC, the zone unknown
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: year 9999 -12:00
        return None


class _TextOfHtml(HTMLParser):
    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
              "blockquote", "pre", "hr"}
    SKIP = {"script", "style", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("• ")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body: scripts and styles dropped, blocks on their own
    lines, entities decoded, runs of blank space collapsed."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _decode(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", errors="replace")
    except (LookupError, ValueError):    # an unknown (or NUL-holding) charset: utf-8 is best
        return payload.decode("utf-8", errors="replace")


def _structured(part, name: str):
    """A parsed Content-* header (once: ``policy.default`` parses on every access)."""
    try:
        return part[name]
    except (ValueError, TypeError, IndexError):
        return None


def _body_and_attachments(msg: EmailMessage) -> tuple[str, list[Attachment]]:
    plain, html, attachments = [], [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ct = _structured(part, "Content-Type")
        ctype = (getattr(ct, "content_type", None) or part.get_default_type()).lower()
        params = dict(getattr(ct, "params", None) or {})
        cd = _structured(part, "Content-Disposition")
        disposition = (getattr(cd, "content_disposition", None) or "").lower() or None
        filename = part.get_filename() if cd is not None or "name" in params else None
        if disposition == "attachment" or filename or not ctype.startswith("text/"):
            if ctype == "message/rfc822" and not filename:
                filename = "message.eml"
            content = part.get_payload(decode=True)
            if content is None:          # message/rfc822 keeps a parsed payload
                content = part.as_bytes() if ctype != "message/rfc822" else \
                    b"".join(p.as_bytes() for p in part.get_payload())
            attachments.append(Attachment(
                filename=_text(filename or "").strip()[:500] or "attachment",
                content_type=_text(ctype)[:MAX_CONTENT_TYPE],
                size=len(content), sha256=hashlib.sha256(content).hexdigest(), content=content))
        elif ctype in ("text/plain", "text/html"):
            text = _decode(part.get_payload(decode=True) or b"", params.get("charset"))
            (plain if ctype == "text/plain" else html).append(text)
    if plain:
        text = "\n\n".join(t.strip() for t in plain)
    else:
        text = "\n\n".join(html_to_text(h) for h in html)
    return _text(text.replace("\r\n", "\n"))[:MAX_TEXT], attachments


def idempotency_key(message_id: str | None, date: str, sender: str, subject: str,
                    body_start: bytes) -> str:
    """``message_id`` when there is one, else ``sha256:<hex>`` of Date + From + Subject (as
    written, unfolded) + the first kilobyte of the body."""
    if message_id:
        return message_id
    digest = hashlib.sha256()
    for piece in (date, sender, subject):
        digest.update(piece.encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    digest.update(body_start[:1024])
    return "sha256:" + digest.hexdigest()


def _raw_body(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(sep)
        if at >= 0:
            return raw[at + len(sep):]
    return b""


def _raw_headers(msg: EmailMessage) -> dict[str, str]:
    """The first value of each header as written, unfolded (no decoding, no parsing)."""
    out: dict[str, str] = {}
    for name, value in msg.raw_items():
        key = name.lower()
        if key not in out:
            out[key] = " ".join(str(value).split())
    return out


def parse_message(raw: bytes) -> ParsedMessage:
    """Everything the CRM keeps of one raw message."""
    msg = message_from_bytes(raw, policy=policy.default)
    headers = _raw_headers(msg)
    names: dict = {}
    ids = message_ids(headers.get("message-id"))
    message_id = ids[0] if ids else None
    from_list = _addresses(msg, "From", names)
    subject = _header(msg, "Subject")[:MAX_SUBJECT]
    text, attachments = _body_and_attachments(msg)
    references = tuple(message_ids(headers.get("references")))
    reply_ids = message_ids(headers.get("in-reply-to"))
    from_address = from_list[0] if from_list else None
    key = idempotency_key(message_id, headers.get("date", ""), headers.get("from", ""),
                          headers.get("subject", ""), _raw_body(raw))
    return ParsedMessage(
        message_id=message_id, key=key, subject=subject, from_address=from_address,
        from_name=names.get(from_address, "") if from_address else "",
        to=tuple(_addresses(msg, "To", names)), cc=tuple(_addresses(msg, "Cc", names)),
        names=names, sent_at=_date(headers.get("date", "")),
        in_reply_to=reply_ids[0] if reply_ids else None, references=references, text=text,
        attachments=tuple(attachments), size=len(raw))


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def make_address(name: str, address: str) -> str:
    """``"Name" <addr>`` with the name encoded as needed (for sending)."""
    local, _, domain = address.partition("@")
    return str(Address(display_name=name or "", username=local, domain=domain))

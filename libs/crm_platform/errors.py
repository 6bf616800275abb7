"""Domain errors: the one error vocabulary of every service.

Services raise these from RPC methods; nameko carries them to the gateway, which (having imported
this module, so that ``remote_error`` rebuilds the same classes) maps each to an HTTP status and an
RFC 9457 problem document. Arguments stay JSON-friendly because they cross the wire.
"""

import json

from nameko.exceptions import registry


class DomainError(Exception):
    """Base of every error meant for the caller. ``detail`` is a human sentence (Russian for
    people), ``code`` a stable machine word, ``fields`` maps a field name to its reasons."""

    status = 400
    title = "Bad request"
    code = "bad_request"

    def __init__(self, detail: str = "", fields: dict | str | None = None,
                 code: str | None = None, extra: dict | str | None = None):
        # nameko stringifies every non-string argument on the wire (2 -> "2", None -> "None"):
        # fields and extra travel as JSON text and come back with their types.
        fields = json.loads(fields) if isinstance(fields, str) else (fields or {})
        extra = json.loads(extra) if isinstance(extra, str) else (extra or {})
        super().__init__(detail, json.dumps(fields, ensure_ascii=False, default=str),
                         code or self.code, json.dumps(extra, ensure_ascii=False, default=str))
        self.detail = detail
        self.fields = fields
        self.code = code or type(self).code
        self.extra = extra

    def __str__(self):
        return self.detail or self.title


class ValidationFailed(DomainError):
    status = 422
    title = "Validation failed"
    code = "validation_failed"


class NotFound(DomainError):
    status = 404
    title = "Not found"
    code = "not_found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    code = "forbidden"


class Hidden(NotFound):
    """A refusal answered as 404, where even a 403 would tell that the thing exists (another
    manager's deal). For the caller it is a ``NotFound``; the platform audits it as an access
    denial like ``Forbidden`` (``crm_platform.audit``)."""


class Unauthenticated(DomainError):
    status = 401
    title = "Unauthenticated"
    code = "unauthenticated"


class QuotaExceeded(DomainError):
    status = 429
    title = "Quota exceeded"
    code = "quota_exceeded"


class Unavailable(DomainError):
    """A dependency (the database) is briefly unreachable, e.g. restarting: nothing was applied,
    the same request may be sent again."""

    status = 503
    title = "Service unavailable"
    code = "service_unavailable"


ERROR_TYPES = (ValidationFailed, NotFound, Hidden, Conflict, Forbidden, Unauthenticated,
               QuotaExceeded, Unavailable, DomainError)


def register_remote_errors():
    """Let nameko rebuild these classes from RPC replies in this process (the gateway only:
    the registry is process-global)."""
    for cls in ERROR_TYPES:
        registry[f"{cls.__module__}.{cls.__name__}"] = cls

"""Secret settings: which ones a service reads, and refusing to run on development values.

A service class declares the secrets it reads (``form_secrets = RequiredSecrets(
"FORM_TOKEN_SECRET")``). ``deploy.generate`` wires each declared name from the Secret
``crm-app-secrets`` (``CRM_<NAME>``, a required key: the pod does not start without it), and with
``REFUSE_DEV_SECRETS`` on (the Kubernetes config sets it) the service refuses to start while any of
them is empty, a development default or shorter than 16 characters.
"""

from __future__ import annotations

from nameko.extensions import DependencyProvider

# The throw-away values a developer's machine runs with (config.yaml defaults, code fallbacks):
# fine on a laptop, a forged token or unsubscribe link away from trouble anywhere else.
DEV_SECRET_VALUES = frozenset({
    "dev-only-secret-change-me",                       # JWT_SECRET
    "dev-only-unsubscribe-secret-change-me",           # CAMPAIGN_UNSUBSCRIBE_SECRET
    "roofcrm-dev-form-secret",                         # FORM_TOKEN_SECRET's fallback in deals
})
MIN_SECRET_LENGTH = 16


def weak_secrets(config: dict, names) -> list[str]:
    """The settings among ``names`` that are empty, a known development value or too short."""
    weak = []
    for name in names:
        value = str(config.get(name) or "")
        if not value or value in DEV_SECRET_VALUES or len(value) < MIN_SECRET_LENGTH:
            weak.append(name)
    return weak


class RequiredSecrets(DependencyProvider):
    """Declares the secret settings a service reads, as a nameko dependency on the service
    class (``form_secrets = RequiredSecrets("FORM_TOKEN_SECRET")``). With ``REFUSE_DEV_SECRETS``
    on (the Kubernetes config sets it) the service refuses to start while any of them is empty or
    a development default. ``deploy.generate`` reads the names to wire each one from the Secret
    ``crm-app-secrets``."""

    def __init__(self, *names: str):
        self.secret_names = tuple(names)

    def setup(self):
        config = self.container.config
        if str(config.get("REFUSE_DEV_SECRETS") or "").lower() not in ("1", "true", "yes"):
            return
        weak = weak_secrets(config, self.secret_names)
        if weak:
            raise RuntimeError(
                f"{self.container.service_name}: refusing to start with an empty or development "
                f"value of {', '.join(weak)} (set CRM_<name> from a secret)")

    def get_dependency(self, worker_ctx):
        return self.secret_names


def secret_names_of(cls) -> list[str]:
    """Every name declared by ``RequiredSecrets`` on a service class and its bases, sorted."""
    names = set()
    for attr in dir(cls):
        names.update(getattr(getattr(cls, attr, None), "secret_names", ()) or ())
    return sorted(names)

"""Secret settings: a service refuses to start on an empty or development secret when told to
(Kubernetes), and starts on a laptop with the dev defaults."""

import pytest
from nameko.containers import ServiceContainer

from crm_platform.secrets import RequiredSecrets, secret_names_of, weak_secrets


class Guarded:
    name = "guarded"
    secrets = RequiredSecrets("FORM_TOKEN_SECRET", "JWT_SECRET")


def start(config):
    container = ServiceContainer(Guarded, {"AMQP_URI": "memory://", **config})
    try:
        container.start()
    finally:
        container.kill()


def test_weak_secrets_are_named():
    config = {"JWT_SECRET": "dev-only-secret-change-me", "FORM_TOKEN_SECRET": "short",
              "CAMPAIGN_UNSUBSCRIBE_SECRET": "a0" * 16}
    assert weak_secrets(config, ["JWT_SECRET", "FORM_TOKEN_SECRET",
                                 "CAMPAIGN_UNSUBSCRIBE_SECRET", "MISSING"]) == [
        "JWT_SECRET", "FORM_TOKEN_SECRET", "MISSING"]


def test_a_service_refuses_dev_secrets_only_when_told_to():
    dev = {"JWT_SECRET": "dev-only-secret-change-me"}
    start(dev)                                                  # a developer's machine
    start({**dev, "REFUSE_DEV_SECRETS": False})
    with pytest.raises(RuntimeError) as exc:
        start({**dev, "REFUSE_DEV_SECRETS": True})
    assert "FORM_TOKEN_SECRET, JWT_SECRET" in str(exc.value)
    start({"REFUSE_DEV_SECRETS": "true", "JWT_SECRET": "0123456789abcdef0123",
           "FORM_TOKEN_SECRET": "fedcba9876543210fedc"})


def test_the_names_are_read_from_the_class_and_its_bases():
    class Service(Guarded):
        more = RequiredSecrets("CAMPAIGN_UNSUBSCRIBE_SECRET")

    assert secret_names_of(Service) == ["CAMPAIGN_UNSUBSCRIBE_SECRET", "FORM_TOKEN_SECRET",
                                        "JWT_SECRET"]

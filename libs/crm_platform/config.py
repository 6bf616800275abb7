"""Settings read from the environment.

Services get their nameko config from ``config.yaml`` (``${ENV:default}`` placeholders); this module
holds the same defaults for the code that runs outside a container (CLI tools, migrations, tests).
"""

import os

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def amqp_uri() -> str:
    return env("CRM_AMQP_URI", DEFAULT_AMQP_URI)


def service_db_url(service: str) -> str:
    """The database URL of one service: ``CRM_<SERVICE>_DB_URL``, else ``CRM_DB_URL``, else the
    local default (one database and role per service, named ``crm_<service>``)."""
    specific = env(f"CRM_{service.upper()}_DB_URL")
    if specific:
        return specific
    generic = env("CRM_DB_URL")
    if generic:
        return generic
    host = env("CRM_PG_HOST", "127.0.0.1")
    port = env("CRM_PG_PORT", "5432")
    name = f"crm_{service}"
    return f"postgresql+psycopg2://{name}:{name}@{host}:{port}/{name}"


def as_float(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def as_int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default

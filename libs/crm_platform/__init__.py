"""What every service of the CRM shares, and nothing more.

config        settings from the environment
clock         the one source of "now", movable in tests
errors        the domain error types every service raises and the gateway maps to HTTP
identity      the caller identity carried in the RPC context, and access checks
contracts     the event envelope and every event contract (one module, both sides test it)
db            the SQLAlchemy session dependency
outbox        transactional outbox: emit in the same transaction, relay with publisher confirms
consumer      event handler entrypoint: contract check, retry with back-off, dead-lettering
inbox         idempotent consumption: handled event ids recorded in the consumer's transaction
deadletters   list and re-drive dead letters
observability Prometheus metrics, structured JSON logs, health and readiness
service       the base classes services inherit (health endpoints, metrics, outbox, db)
"""

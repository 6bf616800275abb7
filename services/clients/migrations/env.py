from alembic import context

from crm_platform.migrate import run_migrations
from services.clients.models import metadata

run_migrations(context, metadata)

"""Tables of the telephony service (its own database; no other service reads them)."""

import sqlalchemy as sa

metadata = sa.MetaData()

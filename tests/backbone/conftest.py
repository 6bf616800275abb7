import pytest
import sqlalchemy as sa

from crm_platform.testing import empty_database

from .probe_services import probe_metadata, sink_metadata


@pytest.fixture
def probe_db(test_databases):
    url = test_databases.blank("probe", probe_metadata)
    empty_database(url)
    return url


@pytest.fixture
def sink_db(test_databases):
    url = test_databases.blank("sink", sink_metadata)
    empty_database(url)
    return url


class Db:
    def __init__(self, url):
        self.engine = sa.create_engine(url)

    def scalar(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()

    def execute(self, sql, **params):
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)


@pytest.fixture
def probe_sql(probe_db):
    db = Db(probe_db)
    yield db
    db.engine.dispose()


@pytest.fixture
def sink_sql(sink_db):
    db = Db(sink_db)
    yield db
    db.engine.dispose()

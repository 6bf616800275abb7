import pytest

from crm_platform.testing import SqlReader, empty_database

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


@pytest.fixture
def probe_sql(probe_db):
    db = SqlReader(probe_db)
    yield db
    db.engine.dispose()


@pytest.fixture
def sink_sql(sink_db):
    db = SqlReader(sink_db)
    yield db
    db.engine.dispose()

"""The directory service in a real container, on the test vhost and a fresh migrated database."""

from __future__ import annotations

import pytest

from services.directory.service import DirectoryService

from .support import Directory, Sql


@pytest.fixture
def directory_db(service_db):
    return service_db("directory")


@pytest.fixture
def sql(directory_db):
    db = Sql(directory_db)
    yield db
    db.engine.dispose()


@pytest.fixture
def container(container_factory, service_config, directory_db):
    container = container_factory(DirectoryService, service_config(db_url=directory_db))
    container.start()
    return container


@pytest.fixture
def directory(container):
    return Directory(container)

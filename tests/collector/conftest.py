"""Fixtures of the collector's tests: a PostgreSQL cluster for the session, a database per test, and
the collector as a child process."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.support.pg_server import PostgresServer, PostgresUnavailable

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as err:
        pytest.skip(str(err))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh, empty database in the session's cluster."""
    return postgres.create_database(f"test_{next(_names)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The test runs once on the embedded SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/collector.sqlite"
    url: str = request.getfixturevalue("pg_url")
    return url

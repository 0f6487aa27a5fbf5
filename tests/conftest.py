"""Fixtures shared by all tests: a real mosquitto per test, a throwaway PKI, and a PostgreSQL
cluster of the tests' own for the session with a fresh database per test."""

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.certs import Pki, make_pki
from tests.support.mqtt_broker import Broker, BrokerFactory, TlsSetup, start_broker
from tests.support.pg_server import PostgresServer, PostgresUnavailable


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """An anonymous, plain-TCP mosquitto, stopped after the test."""
    with start_broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    """Start brokers with `start_broker`'s options, each in its own directory; stop all after."""
    directories = (tmp_path / f"broker-{n}" for n in itertools.count())
    with contextlib.ExitStack() as brokers:

        def start(
            *,
            tls: TlsSetup | None = None,
            passwords: Mapping[str, str] | None = None,
            acl: str | None = None,
            port: int | None = None,
        ) -> Broker:
            started = start_broker(
                next(directories), tls=tls, passwords=passwords, acl=acl, port=port
            )
            return brokers.enter_context(started)

        yield start


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1, and a client certificate."""
    return make_pki(tmp_path / "pki")


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a run that included the fault catalogue, print what each fault cost."""
    from tests.support.faults import ROWS, table

    if ROWS:
        terminalreporter.section("fault catalogue: readings committed, delivered, lost")
        for line in table(ROWS):
            terminalreporter.write_line(line)

"""Fixtures shared by all tests: a real mosquitto per test and a throwaway PKI."""

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.certs import Pki, make_pki
from tests.support.mqtt_broker import Broker, BrokerFactory, TlsSetup, start_broker


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a run that included the fault catalogue, print what each fault cost."""
    from tests.support.faults import ROWS, table

    if ROWS:
        terminalreporter.section("fault catalogue: readings committed, delivered, lost")
        for line in table(ROWS):
            terminalreporter.write_line(line)

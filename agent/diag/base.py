"""What every diagnostic check shares: its result, its inputs, and a name lookup with a time limit.

A check is a plain function `(inputs, earlier, budget_s) -> CheckResult`. It reads the machine only
through `DiagInputs` (config, clock, `/proc` and `/sys` roots), so a test can point it at a fixture
tree or a namespace it built, and it never prints: the words come from `messages.py` by key.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.clock import Clock, SystemClock
from agent.config.schema import Config

Status = Literal["pass", "warn", "fail"]
Arg = str | int | float


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One line of the checklist: the outcome and a message key with its arguments."""

    name: str
    status: Status
    key: str  # into messages.MESSAGES; the same key in every language
    args: Mapping[str, Arg] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    """The outcome of resolving one name: addresses, or why there are none."""

    addresses: tuple[str, ...] = ()
    error: str | None = None  # "timeout" | "nxdomain" | the resolver's own words
    elapsed_s: float = 0.0


class Resolver:
    """getaddrinfo with a time limit, remembered for one diag run.

    glibc's resolver cannot be interrupted, so each lookup runs in a daemon thread; a caller waits at
    most its own budget. A name that timed out once is not waited for again: with a dead resolver the
    broker checks fail at once ("name not resolved") instead of each spending its budget on DNS.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self._done: dict[str, Lookup] = {}

    def lookup(self, host: str, timeout_s: float) -> Lookup:
        with self._lock:
            if host in self._done:
                return self._done[host]
            event = self._pending.get(host)
            if event is None:
                event = threading.Event()
                self._pending[host] = event
                threading.Thread(
                    target=self._resolve, args=(host, event), name="diag-dns", daemon=True
                ).start()
        if event.wait(timeout_s):
            return self._done[host]
        timed_out = Lookup(error="timeout", elapsed_s=timeout_s)
        with self._lock:
            self._done.setdefault(host, timed_out)
            return self._done[host]

    def _resolve(self, host: str, event: threading.Event) -> None:
        start = time.monotonic()
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            found = Lookup(
                addresses=tuple(dict.fromkeys(str(info[4][0]) for info in infos)),
                elapsed_s=time.monotonic() - start,
            )
        except socket.gaierror as err:
            nx = err.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
            found = Lookup(
                error="nxdomain" if nx else str(err.strerror or err),
                elapsed_s=time.monotonic() - start,
            )
        with self._lock:
            self._done.setdefault(host, found)
        event.set()


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagInputs:
    """Everything the checks read. Defaults are the real machine."""

    config: Config | None
    config_file: Path
    config_problems: tuple[str, ...] = ()
    clock: Clock = field(default_factory=SystemClock)
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    vcgencmd: str | None = field(default_factory=lambda: shutil.which("vcgencmd"))
    resolver: Resolver = field(default_factory=Resolver)


Earlier = Mapping[str, CheckResult]
Check = Callable[[DiagInputs, Earlier, float], CheckResult]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckSpec:
    """A check in the ordered list, with the most time it may take."""

    name: str
    run: Check
    timeout_s: float


def result(name: str, status: Status, key: str, **args: Arg) -> CheckResult:
    return CheckResult(name=name, status=status, key=key, args=args)


def needs_config(name: str) -> CheckResult:
    """What a check that reads the config reports when the config could not be loaded."""
    return result(name, "warn", "common.no_config")

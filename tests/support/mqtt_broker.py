"""A real mosquitto, started on a free loopback port for one test and always stopped after it.

Tests talk to the real broker rather than a fake because the behaviours the agent depends on
(negative PUBACKs, ACL reloads, keepalive timeouts, TLS refusals) are the broker's, not ours.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

from tests.support.broker_process import BrokerProcess

HOST: Final = "127.0.0.1"
_START_TIMEOUT_SECONDS: Final = 10.0
_STOP_TIMEOUT_SECONDS: Final = 5.0
_PORT_ATTEMPTS: Final = 5
# Logged once every listener is open ("mosquitto version 2.0.11 running").
_RUNNING_LINE: Final = re.compile(r"^\S* ?mosquitto version \S+ running$", re.MULTILINE)
# Debian installs the broker in /usr/sbin, which is not on an unprivileged user's PATH.
_EXTRA_SEARCH_DIRS: Final = ("/usr/sbin", "/usr/local/sbin")
# mosquitto 2.0's own password hash ($7$): PBKDF2-HMAC-SHA512, 101 rounds, 12-byte salt, the same
# as `mosquitto_passwd -b` writes, without needing that tool or one process per user.
_PBKDF2_ROUNDS: Final = 101
_SALT_BYTES: Final = 12


class BrokerError(RuntimeError):
    """mosquitto is missing, failed to start, or did not do what the test asked in time."""


class PortInUseError(BrokerError):
    """mosquitto could not bind its port: another process took it between pick and bind."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSetup:
    """Files for a TLS listener; `require_client_cert` makes the broker demand a client cert."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False


class Broker(BrokerProcess):
    """One mosquitto process and its files in `workdir`; it can be stopped and started again.

    The listener, and so `port`, stays the same across restarts so a client under test can
    reconnect to the broker it knew.
    """

    host: Final = HOST

    def __init__(
        self,
        *,
        executable: Path,
        workdir: Path,
        port: int,
        tls: TlsSetup | None = None,
        passwords: Mapping[str, str] | None = None,
        acl: str | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        """`extra` lines go into mosquitto.conf as they are (e.g. `max_queued_messages 10`)."""
        self.port: Final = port
        self._extra = tuple(extra)
        self.workdir: Final = workdir
        self.tls: Final = tls
        self.config_path: Final = workdir / "mosquitto.conf"
        self.password_path: Final = workdir / "passwd"
        self.acl_path: Final = workdir / "acl"
        self.log_path = workdir / "mosquitto.log"
        self._executable = executable
        self._has_passwords = passwords is not None
        self._has_acl = acl is not None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        workdir.mkdir(parents=True, exist_ok=True)
        if passwords is not None:
            _write_private(self.password_path, _password_file_text(passwords))
        if acl is not None:
            _write_private(self.acl_path, acl)
        self._write_config()

    def url(self) -> str:
        """The agent's broker URL. TLS too names the address, which the certificates carry as an
        IP subjectAltName: a name would need /etc/hosts, which a minimal Debian lacks, and must
        never be asked of the machine's resolver."""
        scheme = "mqtts" if self.tls is not None else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process exists, including while paused."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = _START_TIMEOUT_SECONDS) -> None:
        """Start mosquitto and return once its port accepts TCP connections.

        Raise PortInUseError if the port is taken, BrokerError (with the log's tail) if mosquitto
        exits or is not listening within `timeout` seconds.
        """
        if self.running:
            raise BrokerError(f"mosquitto on port {self.port} is already running")
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        try:
            # stderr, not `log_dest file`: errors mosquitto prints before it opens its log (a
            # bad config line, a port in use) land in the same file as everything else.
            self._process = subprocess.Popen(
                [str(self._executable), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self._wait_listening(time.monotonic() + timeout)
        except BaseException:
            # Including KeyboardInterrupt: a broker that never became ready is nobody's to stop.
            self.kill()
            raise

    def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop mosquitto with SIGTERM and wait; SIGKILL if it does not exit in time."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            # A stopped process only acts on SIGTERM once it runs again.
            process.send_signal(signal.SIGCONT)
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def kill(self) -> None:
        """Kill mosquitto with SIGKILL, as a crash or power cut would, and wait for it to go."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._close_log()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same config."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze mosquitto with SIGSTOP: TCP stays up but nothing answers, like a hung broker."""
        process = self._require_running()
        process.send_signal(signal.SIGSTOP)
        # WNOWAIT leaves the status for Popen, so it still sees the exit if the process dies.
        os.waitid(os.P_PID, process.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)

    def resume(self) -> None:
        """Let a paused mosquitto run again with SIGCONT."""
        self._require_running().send_signal(signal.SIGCONT)

    def set_acl(self, text: str, timeout: float = _START_TIMEOUT_SECONDS) -> None:
        """Replace the ACL file and make the running broker reload it (SIGHUP).

        Return once mosquitto has logged the reload; it is single-threaded, so every packet a
        client sends after that is checked against the new ACL.
        """
        process = self._require_running()
        _write_private(self.acl_path, text)
        if not self._has_acl:
            self._has_acl = True
            self._write_config()
        reloads = self.read_log().count("Reloading config")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.read_log().count("Reloading config") <= reloads:
            if time.monotonic() > deadline:
                raise BrokerError(f"mosquitto did not reload its config:\n{self.log_tail()}")
            time.sleep(0.01)

    def __repr__(self) -> str:
        return f"<Broker {self.url()} running={self.running} log={self.log_path}>"

    def _wait_listening(self, deadline: float) -> None:
        # The TCP probe alone could reach another process that holds the port, so first wait
        # for mosquitto to say it has opened its listeners. On a TLS listener the probe shows
        # up in the log as "Client connection from 127.0.0.1 failed: ... unexpected eof".
        process = self._require_process()
        while True:
            if process.poll() is not None:
                error = (
                    PortInUseError if "Address already in use" in self.read_log() else BrokerError
                )
                raise error(
                    f"mosquitto exited with status {process.returncode} while starting on"
                    f" port {self.port}:\n{self.log_tail()}"
                )
            if _RUNNING_LINE.search(self.read_log()) and _accepts_connections(self.host, self.port):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"mosquitto is not listening on {self.host}:{self.port} after starting:"
                    f"\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise BrokerError("mosquitto was never started")
        return self._process

    def _require_running(self) -> subprocess.Popen[bytes]:
        process = self._require_process()
        if process.poll() is not None:
            raise BrokerError(f"mosquitto is not running:\n{self.log_tail()}")
        return process

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _write_config(self) -> None:
        lines = [
            "per_listener_settings false",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "log_timestamp true",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            # Nagle's algorithm and delayed ACKs add up to 40 ms to each small round trip.
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            # As root mosquitto switches to the `mosquitto` user, which cannot read tmp_path.
            lines.append("user root")
        lines.append(f"allow_anonymous {'false' if self._has_passwords else 'true'}")
        if self._has_passwords:
            lines.append(f"password_file {_config_path(self.password_path)}")
        if self._has_acl:
            lines.append(f"acl_file {_config_path(self.acl_path)}")
        lines += self._extra
        lines.append(f"listener {self.port} {self.host}")
        if self.tls is not None:
            lines += [
                f"cafile {_config_path(self.tls.ca_file)}",
                f"certfile {_config_path(self.tls.cert_file)}",
                f"keyfile {_config_path(self.tls.key_file)}",
                f"require_certificate {'true' if self.tls.require_client_cert else 'false'}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")


class BrokerFactory(Protocol):
    """Start a broker like `start_broker`, in a directory of the factory's choosing."""

    def __call__(
        self,
        *,
        tls: TlsSetup | None = None,
        passwords: Mapping[str, str] | None = None,
        acl: str | None = None,
        port: int | None = None,
    ) -> Broker: ...


def start_broker(
    workdir: Path,
    *,
    tls: TlsSetup | None = None,
    passwords: Mapping[str, str] | None = None,
    acl: str | None = None,
    port: int | None = None,
    extra: Sequence[str] = (),
) -> Broker:
    """Write a config into `workdir` and start mosquitto on 127.0.0.1.

    Without `port`, pick a free one, and pick again if another process takes it before mosquitto
    binds. `passwords` (user -> password) turns anonymous access off; `acl` is the text of a
    mosquitto ACL file. The caller owns the returned broker and must stop it.
    """
    executable = find_mosquitto()
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        broker = Broker(
            executable=executable,
            workdir=workdir,
            port=port if port is not None else _free_port(),
            tls=tls,
            passwords=passwords,
            acl=acl,
            extra=extra,
        )
        try:
            broker.start()
        except PortInUseError:
            if attempt == attempts:
                raise
        else:
            return broker
    raise AssertionError("unreachable: the last attempt returns or raises")


def find_mosquitto() -> Path:
    """The mosquitto executable; raise BrokerError saying how to install it if there is none."""
    search_path = os.pathsep.join([os.environ.get("PATH", os.defpath), *_EXTRA_SEARCH_DIRS])
    found = shutil.which("mosquitto", path=search_path)
    if found is None:
        raise BrokerError(
            "mosquitto is not installed (not on PATH, nor in /usr/sbin): install Debian's"
            " `mosquitto` package (`apt-get install mosquitto`; tests/run does this)"
        )
    return Path(found)


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A free loopback port below the ephemeral range, for brokers of other kinds too."""
    return _free_port()


def _free_port() -> int:
    """A free port below the kernel's ephemeral range.

    A port from the ephemeral range (what binding port 0 gives) can be chosen by the kernel as the
    source port of a client connecting to it while the broker is stopped: on loopback that client
    then connects to itself (TCP simultaneous open) and holds the port, and the broker cannot come
    back on it.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise BrokerError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _password_file_text(passwords: Mapping[str, str]) -> str:
    lines = []
    for user, password in passwords.items():
        if ":" in user or "\n" in user:
            raise BrokerError(f"mosquitto user names cannot contain ':' or newlines: {user!r}")
        salt = secrets.token_bytes(_SALT_BYTES)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ROUNDS)
        lines.append(f"{user}:$7${_PBKDF2_ROUNDS}${_b64(salt)}${_b64(digest)}")
    return "\n".join(lines) + "\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _config_path(path: Path) -> str:
    # mosquitto splits config lines on whitespace, so such a path would be silently cut short.
    text = str(path.resolve())
    if any(char.isspace() for char in text):
        raise BrokerError(f"mosquitto cannot read a config path with whitespace: {text!r}")
    return text


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)

"""A real-network lab for probe accuracy: two network namespaces joined by a veth pair.

`gw` plays the gateway, where the probes run; `far` plays the other end of the backhaul. Rate is
shaped with tbf; delay and loss come from a userspace ICMP responder (`simulator.icmp_responder`)
because netem is missing from the kernels this runs on. Needs root. Every name a lab creates is
unique to it and lives inside its own namespaces, so labs can run side by side and the host's
network is never touched.

    with Lab() as lab, lab.start_responder(delay_ms=300, loss=0.02, seed=1):
        lab.run("gw", [sys.executable, "-c", "..."])
"""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

Role = Literal["gw", "far"]

GW_ADDR = "10.77.0.1"
FAR_ADDR = "10.77.0.2"
GW_ADDR6 = "fd77::1"  # ULA: meaningful only inside the lab's namespaces
FAR_ADDR6 = "fd77::2"
_ADDRESSES: dict[Role, tuple[str, str]] = {"gw": (GW_ADDR, GW_ADDR6), "far": (FAR_ADDR, FAR_ADDR6)}
_IFACE: dict[Role, str] = {"gw": "veth-gw", "far": "veth-far"}
_ROOT = Path(__file__).resolve().parents[2]
_serial = itertools.count()


class LabError(Exception):
    """The lab could not be built or driven; the message carries the failing command's stderr."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def netns_available() -> tuple[bool, str]:
    """Return (True, "") when this process can build a lab, else (False, why not)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return False, "iproute2 (ip, tc) is not installed"
    name = f"va-{os.getpid()}-{next(_serial)}-check"
    try:
        _ip("netns", "add", name)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        return False, f"cannot create a network namespace: {exc}"
    try:
        # `ip netns exec` makes / a slave mount in a mount namespace of its own: that fails where
        # / is not a mount point (a chroot not bound onto itself), which a booted system never is.
        entered = _ip("netns", "exec", name, "ip", "link", "show", "lo", check=False)
    finally:
        _ip("netns", "del", name, check=False)
    if entered.returncode != 0:
        return False, f"cannot enter a network namespace: {entered.stderr.strip()}"
    return True, ""


class Responder:
    """A running `simulator.icmp_responder`; `stop()` ends it and returns its counts."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc

    def stop(self) -> dict[str, int]:
        """Stop the responder. Return its counts (received, dropped, answered, send_failed)."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        out, err = self._proc.communicate(timeout=10)
        lines = out.strip().splitlines()
        if self._proc.returncode != 0 or not lines:
            raise LabError(f"icmp responder exited {self._proc.returncode}: {err.strip()}")
        counts: dict[str, int] = json.loads(lines[-1])
        return counts

    def __enter__(self) -> Responder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            self.stop()


class Lab:
    """Two namespaces, `gw` and `far`, on one veth link with IPv4 and IPv6 addresses.

    A context manager: everything it created is removed on exit, also when building failed."""

    def __init__(self) -> None:
        serial = next(_serial)
        self.names: dict[Role, str] = {
            role: f"va-{os.getpid()}-{serial}-{role}" for role in ("gw", "far")
        }
        self._created: list[str] = []
        self._procs: list[subprocess.Popen[str]] = []

    @property
    def gw_addr(self) -> str:
        return GW_ADDR

    @property
    def far_addr(self) -> str:
        return FAR_ADDR

    @property
    def gw_addr6(self) -> str:
        return GW_ADDR6

    @property
    def far_addr6(self) -> str:
        return FAR_ADDR6

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _build(self) -> None:
        for name in self.names.values():
            _ip("netns", "add", name)
            self._created.append(name)
        # Both ends are born inside their namespaces: no name ever exists in the host's namespace,
        # where it could collide with another lab or with a real interface.
        gw, far = self.names["gw"], self.names["far"]
        veth = ["type", "veth", "peer", "name", _IFACE["far"], "netns", far]
        _ip("link", "add", _IFACE["gw"], "netns", gw, *veth)
        for role, (v4, v6) in _ADDRESSES.items():
            ns, iface = self.names[role], _IFACE[role]
            # Keep the IPv6 address across link_down()/link_up(), as IPv4 addresses are kept.
            self._sysctl(role, f"net.ipv6.conf.{iface}.keep_addr_on_down", "1")
            # No duplicate detection, for the link-local address too: addresses are usable at
            # once instead of tentative for a second or two.
            self._sysctl(role, f"net.ipv6.conf.{iface}.accept_dad", "0")
            _ip("-n", ns, "addr", "add", f"{v4}/24", "dev", iface)
            _ip("-n", ns, "-6", "addr", "add", f"{v6}/64", "dev", iface, "nodad")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", iface, "up")
        self._wait_for_carrier()
        self._pin_neighbours()

    def _pin_neighbours(self) -> None:
        # Static neighbours: the first probes of a round measure the path, not ARP or neighbour
        # discovery, and an outage made by blackhole() cannot be prolonged by a failed resolution.
        pairs: tuple[tuple[Role, Role], ...] = (("gw", "far"), ("far", "gw"))
        for role, peer in pairs:
            mac = self._link(peer)["address"]
            for address in _ADDRESSES[peer]:
                _ip("-n", self.names[role], "neigh", "replace", address, "lladdr", str(mac),
                    "nud", "permanent", "dev", _IFACE[role])  # fmt: skip

    def _link(self, role: Role) -> dict[str, Any]:
        shown = _ip("-n", self.names[role], "-j", "link", "show", "dev", _IFACE[role])
        link: dict[str, Any] = json.loads(shown.stdout)[0]
        return link

    def _wait_for_carrier(self, timeout_s: float = 5.0) -> None:
        # The kernel reports a new carrier through its link-watch work, which it may defer by up
        # to a second; packets sent before that are dropped, so wait instead of losing them.
        deadline = time.monotonic() + timeout_s
        roles: tuple[Role, ...] = ("gw", "far")
        while any(self._link(role).get("operstate") != "UP" for role in roles):
            if time.monotonic() > deadline:
                raise LabError(f"no carrier on the lab link after {timeout_s} s")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the processes started in the lab and delete its namespaces (and so its link)."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        while self._created:
            _ip("netns", "del", self._created.pop(), check=False)

    def _exec(self, ns: Role, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.names[ns], *argv]

    def run(
        self,
        ns: Role,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside namespace `ns` and capture its output. Raise LabError when it fails
        and `check` is set."""
        done = subprocess.run(
            self._exec(ns, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
            env=_env(),
            cwd=_ROOT,
        )
        if check and done.returncode != 0:
            raise LabError(f"{' '.join(argv)} in {ns} exited {done.returncode}: {done.stderr}")
        return done

    def popen(self, ns: Role, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start `argv` inside namespace `ns`; the lab stops it on close if it still runs."""
        kwargs.setdefault("env", _env())
        kwargs.setdefault("cwd", _ROOT)
        proc: subprocess.Popen[str] = subprocess.Popen(self._exec(ns, argv), text=True, **kwargs)
        self._procs.append(proc)
        return proc

    def _sysctl(self, ns: Role, key: str, value: str) -> None:
        # /proc/sys/net shows the namespace of the process that opens it, so a process inside the
        # namespace writes the file itself: sysctl(8) (procps) is not on a minimal Debian.
        path = "/proc/sys/" + key.replace(".", "/")
        write = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
        self.run(ns, [sys.executable, "-c", write, path, value])

    def set_ping_group_range(self, ns: Role, low: int, high: int) -> None:
        """Let groups low..high open unprivileged ICMP sockets in `ns` ("1 0" lets nobody)."""
        self._sysctl(ns, "net.ipv4.ping_group_range", f"{low} {high}")

    def shape(
        self, rate_kbit: int, *, burst_bytes: int | None = None, latency_ms: int = 50
    ) -> None:
        """Limit both directions to `rate_kbit` with a token bucket; packets that would wait longer
        than `latency_ms` for tokens are dropped, as on a saturated backhaul."""
        # A bucket smaller than one full frame would never let one through; 10 ms of rate else.
        burst = burst_bytes if burst_bytes is not None else max(3000, rate_kbit * 1000 // 8 // 100)
        for role in ("gw", "far"):
            tbf = ["tbf", "rate", f"{rate_kbit}kbit", "burst", str(burst)]
            tbf += ["latency", f"{latency_ms}ms"]
            self.run(role, ["tc", "qdisc", "replace", "dev", _IFACE[role], "root", *tbf])

    def unshape(self) -> None:
        """Remove the rate limit."""
        for role in ("gw", "far"):
            self.run(role, ["tc", "qdisc", "del", "dev", _IFACE[role], "root"], check=False)

    def link_down(self) -> None:
        """Take the gateway's side of the link down: sends fail at once (network unreachable)."""
        _ip("-n", self.names["gw"], "link", "set", _IFACE["gw"], "down")

    def link_up(self) -> None:
        """Bring the gateway's side of the link back; return once packets flow again."""
        _ip("-n", self.names["gw"], "link", "set", _IFACE["gw"], "up")
        self._wait_for_carrier()
        self._pin_neighbours()

    def blackhole(self, on: bool) -> None:
        """Make the far end silently lose everything addressed back to the gateway, or stop that.

        The route sits on the far side on purpose: there, requests still leave the gateway and
        simply never get an answer, like an upstream outage. On the gateway's side the kernel
        would refuse the send locally, which is a different fault."""
        action = "replace" if on else "del"
        far = self.names["far"]
        _ip("-n", far, "route", action, "blackhole", f"{GW_ADDR}/32", check=on)
        _ip("-n", far, "-6", "route", action, "blackhole", f"{GW_ADDR6}/128", check=on)

    def start_responder(
        self, delay_ms: float, loss: float = 0.0, seed: int = 0, family: Literal[4, 6] = 4
    ) -> Responder:
        """Start `simulator.icmp_responder` in the far namespace and wait until it listens."""
        argv = [sys.executable, "-m", "simulator.lab.icmp_responder", "--delay-ms", str(delay_ms)]
        argv += ["--loss", str(loss), "--seed", str(seed), "--family", str(family)]
        proc = self.popen("far", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        if not ready or proc.stdout.readline().strip() != "ready":
            proc.kill()
            _, err = proc.communicate()
            raise LabError(f"icmp responder did not start: {err.strip()}")
        return Responder(proc)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    return env

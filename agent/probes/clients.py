"""Hotspot use: how many client devices the gateway sees on its LAN interface.

Two sources, both cheap and passive: the kernel's neighbour table (a device that talked to the gateway
recently: `ip -j neigh` with its states, or /proc/net/arp where iproute2 is missing), and, when
configured, dnsmasq's leases file (a device that joined within its lease time, even if idle). Devices
are counted by unique MAC address, so one phone in both sources counts once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from agent.probes.base import ProbeError
from agent.reading import Sample

Neighbours = Callable[[str], set[str]]  # interface -> MACs seen on it
WallClock = Callable[[], float]

# Entries the kernel has recently confirmed or is confirming; FAILED/INCOMPLETE ones are addresses
# nobody answered for, NOARP/PERMANENT are static entries, not devices.
LIVE_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE"})
_ATF_COM = 0x2  # /proc/net/arp flag: the entry is complete (a MAC is known)
_NO_MAC = "00:00:00:00:00:00"


def parse_ip_neigh(text: str, interface: str) -> set[str]:
    """MACs of live IPv4/IPv6 neighbours on `interface` from `ip -j neigh` output."""
    macs: set[str] = set()
    for entry in json.loads(text or "[]"):
        states = set(entry.get("state", []))
        mac = entry.get("lladdr")
        if entry.get("dev") == interface and mac and states & LIVE_STATES:
            macs.add(str(mac).lower())
    return macs


def parse_proc_arp(text: str, interface: str) -> set[str]:
    """MACs of complete entries on `interface` from /proc/net/arp (IPv4 only, no states)."""
    macs: set[str] = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6 or fields[5] != interface:
            continue
        if int(fields[2], 16) & _ATF_COM and fields[3] != _NO_MAC:
            macs.add(fields[3].lower())
    return macs


def parse_dnsmasq_leases(text: str, now: float) -> set[str]:
    """MACs of unexpired leases. dnsmasq writes `expiry mac ip hostname client-id`, expiry 0 for an
    infinite lease; expiry and `now` are both the gateway's wall clock, so they agree with each other
    even while it is wrong."""
    macs: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue  # a "duid ..." line (DHCPv6 server id) or damage
        expiry = int(fields[0])
        if expiry == 0 or expiry > now:
            macs.add(fields[1].lower())
    return macs


def system_neighbours(
    interface: str,
    *,
    arp: Path = Path("/proc/net/arp"),
    ip: str | None = None,
    sys_net: Path = Path("/sys/class/net"),
) -> set[str]:
    """Live neighbours on `interface`: `ip -j neigh` when available, else /proc/net/arp. Raise
    ProbeError when the interface does not exist: "0 clients" on a wlan0 that is not there (the
    sample config on a box without Wi-Fi) would read as an empty hotspot."""
    if not (sys_net / interface).exists():
        raise ProbeError(f"lan.interface {interface} does not exist on this gateway")
    tool = ip or shutil.which("ip")
    if tool is not None:
        try:
            done = subprocess.run(
                [tool, "-j", "neigh", "show", "dev", interface],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if done.returncode == 0:
                # `show dev` omits the dev field in each entry: put it back for the parser.
                entries = [dict(e, dev=interface) for e in json.loads(done.stdout or "[]")]
                return parse_ip_neigh(json.dumps(entries), interface)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass  # fall back to the kernel's table, which needs no tool
    try:
        return parse_proc_arp(arp.read_text(encoding="ascii"), interface)
    except OSError:
        return set()


class ClientsProbe:
    """`clients.devices_count` (union), plus `clients.neighbours_count` and `clients.leases_count`."""

    name = "clients"

    def __init__(
        self,
        interface: str | None,
        *,
        wall: WallClock,
        leases_file: Path | None = None,
        neighbours: Neighbours = system_neighbours,
    ) -> None:
        self._interface = interface
        self._wall = wall
        self._leases_file = leases_file
        self._neighbours = neighbours

    def collect(self) -> list[Sample]:
        if self._interface is None:
            return []
        tags = {"iface": self._interface}
        seen = self._neighbours(self._interface)
        samples = [Sample(metric="clients.neighbours_count", value=len(seen), tags=tags)]
        leased = self._leases()
        if leased is not None:
            samples.append(Sample(metric="clients.leases_count", value=len(leased), tags=tags))
            seen = seen | leased
        samples.append(Sample(metric="clients.devices_count", value=len(seen), tags=tags))
        return samples

    def _leases(self) -> set[str] | None:
        if self._leases_file is None:
            return None
        try:
            text = self._leases_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return set()  # dnsmasq writes the file on the first lease
        except OSError:
            return None
        return parse_dnsmasq_leases(text, self._wall())

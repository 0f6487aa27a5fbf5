"""The default routes, as the kernel lists them in /proc/net/route and /proc/net/ipv6_route.

The only reader of the routing tables: the latency probe takes its first hop from here and `diag`
its route and WAN-interface checks, so the two can never disagree on what counts as a route.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

# <linux/route.h> and <linux/ipv6_route.h>
_RTF_UP = 0x1
_RTF_GATEWAY = 0x2
_RTF_REJECT = 0x200  # unreachable/prohibit routes the kernel lists for ::/0 on lo


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultRoute:
    """A usable default route: its interface and, when it goes through one, its gateway."""

    interface: str
    gateway: str | None  # None for a point-to-point link (ppp, some 4G modems): no next hop
    family: int


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return []


def default_routes(proc: Path = Path("/proc")) -> list[DefaultRoute]:
    """Every usable (up, not a reject) default route in the reader's namespace, IPv4 first."""
    found: list[DefaultRoute] = []
    for line in _lines(proc / "net/route")[1:]:
        cols = line.split()
        if len(cols) < 8 or cols[1] != "00000000" or cols[7] != "00000000":
            continue
        flags = int(cols[3], 16)
        if not flags & _RTF_UP:
            continue
        # The kernel prints the address as a host-order (little-endian on ARM and x86) word.
        gateway = socket.inet_ntoa(struct.pack("<I", int(cols[2], 16)))
        found.append(
            DefaultRoute(
                interface=cols[0],
                gateway=gateway if flags & _RTF_GATEWAY else None,
                family=socket.AF_INET,
            )
        )
    for line in _lines(proc / "net/ipv6_route"):
        cols = line.split()
        if len(cols) != 10 or cols[0] != "0" * 32 or cols[1] != "00":
            continue
        flags = int(cols[8], 16)
        if flags & _RTF_UP and not flags & _RTF_REJECT and cols[9] != "lo":
            gateway = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(cols[4]))
            found.append(
                DefaultRoute(
                    interface=cols[9],
                    gateway=gateway if flags & _RTF_GATEWAY else None,
                    family=socket.AF_INET6,
                )
            )
    return found


def default_gateway(proc: Path = Path("/proc")) -> str | None:
    """The IPv4 next hop of the default route (the modem), or None when there is none."""
    for route in default_routes(proc):
        if route.family == socket.AF_INET and route.gateway is not None:
            return route.gateway
    return None

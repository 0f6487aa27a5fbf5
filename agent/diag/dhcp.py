"""Is the hotspot handing out addresses? A DHCP DISCOVER on `lan.interface` with scapy (the `diag`
extra), and what the first OFFER says: the server, the address offered, the lease and the DNS.

Villagers "cannot connect" most often because DHCP on the hotspot LAN is dead. The check sees a
server elsewhere on the LAN (the access point or a router); a DHCP server running on the gateway
itself does not hear a DISCOVER the gateway sends, so there the line says no server answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent.diag.base import CheckResult, DiagInputs, Earlier, needs_config, result


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    server: str
    address: str
    lease_s: int | None
    dns: str


def discover(interface: str, *, timeout_s: float) -> Offer | None:
    """Broadcast one DHCPDISCOVER on `interface` and return the first OFFER, or None. Nothing is
    requested, so no address is taken from the pool. Raise ImportError without scapy,
    PermissionError without CAP_NET_RAW, OSError when the interface cannot be used."""
    # The diag extra, loaded on use: the daemon never imports scapy.
    from scapy.arch import get_if_hwaddr  # noqa: PLC0415
    from scapy.config import conf  # noqa: PLC0415
    from scapy.layers.dhcp import BOOTP, DHCP  # noqa: PLC0415
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.l2 import Ether  # noqa: PLC0415
    from scapy.sendrecv import srp  # noqa: PLC0415
    from scapy.utils import mac2str  # noqa: PLC0415

    mac = get_if_hwaddr(interface)
    xid = random.randrange(1, 0xFFFFFFFF)
    probe = (
        Ether(dst="ff:ff:ff:ff:ff:ff", src=mac)
        / IP(src="0.0.0.0", dst="255.255.255.255")  # noqa: S104 - DHCP's "no address yet"
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac2str(mac), xid=xid, flags=0x8000)  # broadcast the answer: no address
        / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6, 51]), "end"])
    )
    # An OFFER comes from the server's address to the broadcast or offered address, not to the
    # 255.255.255.255 the DISCOVER went to: scapy must not insist that the addresses mirror.
    checked = conf.checkIPaddr
    conf.checkIPaddr = False
    try:
        answered, _lost = srp(probe, iface=interface, timeout=timeout_s, verbose=0, retry=0)
    finally:
        conf.checkIPaddr = checked
    for _sent, got in answered:
        options = {o[0]: o[1:] for o in got[DHCP].options if isinstance(o, tuple)}
        if options.get("message-type", (None,))[0] != 2:  # 2: OFFER
            continue
        lease = options.get("lease_time", (None,))[0]
        return Offer(
            server=str(options.get("server_id", (got[IP].src,))[0]),
            address=str(got[BOOTP].yiaddr),
            lease_s=int(lease) if lease is not None else None,
            dns=", ".join(str(a) for a in options.get("name_server", ())) or "-",
        )
    return None


def check_dhcp(inputs: DiagInputs, _earlier: Earlier, budget_s: float) -> CheckResult:
    if inputs.config is None:
        return needs_config("dhcp")
    interface = inputs.config.lan.interface
    if interface is None:
        return result("dhcp", "pass", "dhcp.no_lan")
    if not (inputs.sys / "class/net" / interface).exists():
        return result("dhcp", "fail", "dhcp.no_interface", iface=interface)
    try:
        # dnsmasq pings an address before it first offers it, up to 3 s: wait past that.
        offer = discover(interface, timeout_s=max(0.5, budget_s - 0.8))
    except ImportError:
        return result("dhcp", "warn", "path.no_scapy")
    except PermissionError:
        return result("dhcp", "warn", "path.no_permission")
    except OSError as err:
        return result("dhcp", "warn", "dhcp.failed", iface=interface, error=str(err))
    if offer is None:
        return result("dhcp", "fail", "dhcp.silent", iface=interface)
    lease = "-" if offer.lease_s is None else f"{offer.lease_s // 60}"
    return result(
        "dhcp",
        "pass",
        "dhcp.ok",
        iface=interface,
        server=offer.server,
        address=offer.address,
        lease_min=lease,
        dns=offer.dns,
    )

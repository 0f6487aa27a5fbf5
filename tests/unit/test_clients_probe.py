"""ClientsProbe and its parsers against neighbour-table and dnsmasq fixture files."""

from pathlib import Path

import pytest

from agent.probes.base import ProbeError
from agent.probes.clients import (
    ClientsProbe,
    parse_dnsmasq_leases,
    parse_ip_neigh,
    parse_proc_arp,
    system_neighbours,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "clients"
NOW = 1_767_250_000.0  # between the fixture's live and expired lease times


def test_ip_neigh_counts_live_states_on_the_lan_interface_only() -> None:
    """REACHABLE/STALE/DELAY/PROBE count; FAILED, INCOMPLETE, PERMANENT and other interfaces don't;
    a device seen over IPv4 and IPv6 counts once."""
    macs = parse_ip_neigh((FIXTURES / "ip_neigh.json").read_text(), "wlan0")
    assert macs == {"a4:5e:60:11:22:33", "3c:28:6d:aa:bb:cc", "f0:99:b6:12:34:56"}


def test_proc_arp_counts_complete_entries_by_unique_mac() -> None:
    """/proc/net/arp: complete entries on the interface, MACs compared case-insensitively."""
    macs = parse_proc_arp((FIXTURES / "arp").read_text(), "wlan0")
    assert macs == {"a4:5e:60:11:22:33", "3c:28:6d:aa:bb:cc"}


def test_dnsmasq_leases_skip_expired_and_count_infinite() -> None:
    """Unexpired and infinite (expiry 0) leases count; expired ones and the duid line do not."""
    macs = parse_dnsmasq_leases((FIXTURES / "dnsmasq.leases").read_text(), NOW)
    assert macs == {"a4:5e:60:11:22:33", "66:77:88:99:aa:bb", "aa:aa:aa:00:00:01"}


def test_probe_counts_the_union_of_neighbours_and_leases() -> None:
    """devices_count is the number of distinct MACs in either source."""

    def neighbours(interface: str) -> set[str]:
        return parse_ip_neigh((FIXTURES / "ip_neigh.json").read_text(), interface)

    probe = ClientsProbe(
        "wlan0", wall=lambda: NOW, leases_file=FIXTURES / "dnsmasq.leases", neighbours=neighbours
    )
    values = {s.metric: (s.value, dict(s.tags)) for s in probe.collect()}
    assert values == {
        "clients.neighbours_count": (3, {"iface": "wlan0"}),
        "clients.leases_count": (3, {"iface": "wlan0"}),
        "clients.devices_count": (5, {"iface": "wlan0"}),
    }


def test_without_a_lan_interface_there_are_no_readings() -> None:
    """An unconfigured LAN interface means no clients.* readings, not an error."""
    assert ClientsProbe(None, wall=lambda: NOW).collect() == []


def test_leases_file_not_yet_written_counts_zero(tmp_path: Path) -> None:
    """dnsmasq creates its leases file at the first lease: until then there are zero leases."""
    probe = ClientsProbe(
        "wlan0", wall=lambda: NOW, leases_file=tmp_path / "none", neighbours=lambda _: set()
    )
    values = {s.metric: s.value for s in probe.collect()}
    assert values["clients.leases_count"] == 0
    assert values["clients.devices_count"] == 0


def test_system_source_falls_back_to_proc_arp(tmp_path: Path) -> None:
    """Without the ip tool the kernel's ARP table is read."""
    missing_tool = str(tmp_path / "no-ip")
    (tmp_path / "net" / "wlan0").mkdir(parents=True)  # as /sys/class/net shows an interface
    macs = system_neighbours(
        "wlan0", arp=FIXTURES / "arp", ip=missing_tool, sys_net=tmp_path / "net"
    )
    assert macs == {"a4:5e:60:11:22:33", "3c:28:6d:aa:bb:cc"}


def test_system_source_reads_this_machine() -> None:
    """On this machine the real sources answer for loopback (no neighbours) without error."""
    assert system_neighbours("lo") == set()


def test_a_missing_interface_is_an_error_not_zero_clients(tmp_path: Path) -> None:
    """lan.interface absent (the sample's wlan0 on a box without Wi-Fi): ProbeError naming it, and
    the round's clients readings are missing rather than 0."""
    with pytest.raises(ProbeError, match=r"lan\.interface wlan9 does not exist"):
        system_neighbours("wlan9", sys_net=tmp_path)
    probe = ClientsProbe("wlan9", wall=lambda: NOW, neighbours=lambda i: system_neighbours(
        i, sys_net=tmp_path))  # fmt: skip
    with pytest.raises(ProbeError):
        probe.collect()

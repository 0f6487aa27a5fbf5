"""How agent/contract/schema/telemetry-2.zdict, the preset zlib dictionary of telemetry schema 2, was built.

A preset dictionary is text deflate may refer back to before the message's first byte, so the
first series table in a message costs a few bytes per series instead of its full names. It holds
what recurs in the agent's real payloads, written exactly as schema 2 writes it:
- the metric names of every probe (README, "Metrics"), with the tags they carry, as series
  entries `["metric",{"tags"}]` with the tags in key order;
- one typical Raspberry Pi site's series table in the order a round lists it (eth0 and wlan0, the
  first hop and 1.1.1.1 by raw ICMP, the state dir's disk, cpu-thermal), a site with other names
  still matching all but the names;
- the layout's own punctuation and keys.
Deflate codes a nearer match in fewer bits, so the likeliest text comes last: rare metrics first,
the typical table after them, the message's opening at the very end.

The file is part of the contract: payloads name it by its adler32 (zlib's DICTID). Once shipped it
is never rebuilt in place; `python -m bench.zdict FILE` writes a candidate to compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

IFACES = ("eth0", "wlan0")
GATEWAY = "192.168.1.1"
STATE_DIR = "/var/lib/village-agent"

_COUNTERS = ("rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_drops", "tx_drops")
_THROTTLE = ("undervoltage", "freq_capped", "throttled", "temp_limit")


def _entry(metric: str, tags: dict[str, str] | None = None) -> str:
    text = json.dumps([metric, dict(sorted((tags or {}).items()))], separators=(",", ":"))
    return text + ","


def _throughput(iface: str) -> list[str]:
    tags = {"iface": iface}
    out = [_entry(f"throughput.{m}", tags) for m in ("rx_bytes", "rx_bps", "tx_bytes", "tx_bps")]
    return out + [_entry(f"throughput.{m}", tags) for m in _COUNTERS]


def _latency(target: str, *, first_hop: bool = False, method: str = "icmp-raw") -> list[str]:
    tags = {"target": target, "method": method, **({"hop": "first"} if first_hop else {})}
    names = ("loss_percent", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "jitter_ms")
    return [_entry(f"latency.{m}", tags) for m in (*names, "loss_window_percent")]


def _rare() -> list[str]:
    """What appears now and then: events, speed tests, other methods and answers."""
    test = {"trigger": "schedule", "server": "speed.example.id"}
    out = [
        _entry("event.agent_start", {"reason": reason})
        for reason in ("first_start", "restart", "crash", "reboot", "power_cut")
    ]
    out += [_entry(f"event.{m}") for m in ("outage_start", "buffer_quarantined")]
    out += [_entry(f"event.{m}") for m in ("buffer_unwritable_s", "outage_end_s")]
    out += [
        _entry("event.speedtest_deferred", {"reason": "busy", "lan_bps": "2500000"}),
        _entry("event.speedtest_skipped", {**test, "reason": "budget", "remaining_bytes": "0"}),
        _entry("event.speedtest_failed", {**test, "direction": "download", "error": "timeout"}),
    ]
    for direction in ("download", "upload"):
        out += [_entry(f"speedtest.{direction}_{u}", test) for u in ("bytes", "s", "bps")]
    out += [_entry(f"speedtest.{m}", test) for m in ("cost_bytes", "budget_day_used_bytes")]
    out.append(_entry("speedtest.budget_month_used_bytes", test))
    for method in ("icmp-dgram", "tcp"):
        out.append(_entry("latency.loss_percent", {"target": "8.8.8.8", "method": method}))
    out += [_entry("dns.success_bool", {"name": "", "server": "none", "rcode": r})
            for r in ("nxdomain", "servfail", "timeout", "unreachable", "noserver")]  # fmt: skip
    out += [_entry(f"system.{flag}_since_boot_bool") for flag in _THROTTLE]
    out += [_entry(f"system.{flag}_now_bool") for flag in _THROTTLE]
    out += _throughput("wwan0")[:4] + _throughput("usb0")[:4] + _throughput("ppp0")[:4]
    return out


def _round() -> list[str]:
    """A typical site's round, in the order the agent's probes list it."""
    out = [line for iface in IFACES for line in _throughput(iface)]
    out += _latency(GATEWAY, first_hop=True) + _latency("1.1.1.1")
    out += [_entry(f"uptime.{m}") for m in ("system_s", "agent_s", "backhaul_up")]
    out.append(_entry("uptime.availability_ratio"))
    out.append(_entry("system.cpu_percent"))
    out += [_entry(f"system.memory_{m}_bytes") for m in ("total", "used", "available")]
    out += [_entry(f"system.load_{m}") for m in ("1m", "5m", "15m")]
    disk = {"path": STATE_DIR}
    out += [_entry(f"system.disk_{m}_bytes", disk) for m in ("total", "used", "free")]
    out.append(_entry("system.temperature_celsius", {"zone": "cpu-thermal"}))
    dns = {"name": "collector.example.id", "server": GATEWAY, "rcode": "noerror"}
    out += [_entry("dns.resolve_ms", dns), _entry("dns.success_bool", dns)]
    lan = {"iface": IFACES[-1]}
    out += [_entry(f"clients.{m}_count", lan) for m in ("neighbours", "leases", "devices")]
    out += [_entry("buffer.backlog_readings"), _entry("buffer.dropped_total")]
    out.append(_entry("publisher.rejected_total"))
    return out


def _layout() -> list[str]:
    """The keys of a run and the message's opening, as json.dumps writes them."""
    runs = '{"seq":1,"dt":60000,"dm":0,"boot":1,"synced":false,"s":[0,1,2],"v":[0,1.5]},'
    head = '{"schema":2,"site":"kukar-tenggarong-01","ts0":1780000000000,"mono0":1,"boots":["'
    return [runs, head, '"],"series":[', ']],"runs":[{"seq":', ',"v":[0,']


def build() -> bytes:
    """The dictionary's bytes."""
    return "".join(_rare() + _round() + _layout()).encode("utf-8")


if __name__ == "__main__":
    data = build()
    Path(sys.argv[1]).write_bytes(data)
    print(f"{len(data)} bytes", file=sys.stderr)

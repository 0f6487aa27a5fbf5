"""The peer row: collectd from Debian's packages (bench/setup.sh installs it) with cpu, memory, load,
uptime, interface, ping (127.0.0.1) and mqtt (QoS 1, through the counting relay to our mosquitto),
at a 10 s interval, measured in the same run as the agent. Plugin settings are Debian's defaults
(ping sends one probe a second whatever the interval; cpu reports per core and state)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench import proc
from bench.net import Broker, Counter, Relay
from bench.table import Row, info

COLLECTD = Path("/usr/sbin/collectd")
PLUGINS = Path("/usr/lib/collectd")
INTERVAL_S = 10


def values_in(_topic: str, payload: bytes) -> int:
    """collectd's mqtt plugin sends `time:v1[:v2...]` per value list: count the values."""
    return max(0, payload.count(b":"))


def config_text(port: int, pidfile: Path) -> str:
    return f"""Hostname "gateway"
FQDNLookup false
Interval {INTERVAL_S}
PIDFile "{pidfile}"
BaseDir "{pidfile.parent}"
PluginDir "{PLUGINS}"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin syslog
<Plugin syslog>
  LogLevel err
</Plugin>
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin uptime
LoadPlugin interface
LoadPlugin ping
LoadPlugin mqtt
<Plugin interface>
  Interface "lo"
  IgnoreSelected true
</Plugin>
<Plugin ping>
  Host "127.0.0.1"
</Plugin>
<Plugin mqtt>
  <Publish "bench">
    Host "127.0.0.1"
    Port {port}
    ClientId "collectd-bench"
    Prefix "collectd"
    QoS 1
  </Publish>
</Plugin>
"""


def measure(broker: Broker, root: Path, logs: Path, *, quick: bool) -> list[Row]:
    del logs
    if not COLLECTD.exists():
        return [Row(metric="collectd: not installed", value="run bench/setup.sh", status="skipped")]
    window_s = 40.0 if quick else 90.0
    root.mkdir(parents=True, exist_ok=True)
    relay = Relay(broker.port)
    counter = Counter(broker.port, "collectd/#", values_in)
    conf = root / "collectd.conf"
    conf.write_text(config_text(relay.port, root / "collectd.pid"))
    # -f: stay in the foreground, so the child is collectd itself and its pid is ours to read.
    daemon = subprocess.Popen([str(COLLECTD), "-f", "-C", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(INTERVAL_S + 2.0)  # past start-up and the first interval's publishes
        if daemon.poll() is not None:
            raise RuntimeError("collectd exited; try `collectd -t -C` on the config")
        first, wire0, mqtt0 = proc.sample(daemon.pid), relay.wire(), counter.snapshot()
        time.sleep(window_s)
        last, wire1, mqtt1 = proc.sample(daemon.pid), relay.wire(), counter.snapshot()
    finally:
        daemon.terminate()
        daemon.wait(10)
        counter.close()
        relay.close()
    cpu_hour = proc.cpu_between(first, last) * 3600 / window_s
    messages, mqtt_bytes, values = (b - a for a, b in zip(mqtt0, mqtt1, strict=True))
    wire = wire1 - wire0
    per_interval = values * INTERVAL_S / window_s
    return [
        info("collectd 5.12 (peer): RSS", last.rss_kb / 1024, "MB"),
        info("  collectd: CPU per hour at interval 10 s", cpu_hour, "CPU-s", digits=2),
        info(
            "  collectd: values per interval / messages per value",
            f"{per_interval:.0f} / {messages / max(1, values):.2f}",
            "",
        ),
        info(
            "  collectd: MQTT bytes per value (payload + topic)", mqtt_bytes / max(1, values), "B"
        ),
        info("  collectd: loopback wire bytes per value", wire.total / max(1, values), "B"),
        info(
            "  collectd: disk bytes written per value",
            (last.write_bytes - first.write_bytes) / max(1, values),
            "B",
        ),
    ]

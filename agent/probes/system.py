"""Gateway health: CPU, memory, disk, load, temperature, and a Raspberry Pi's power/throttle flags.

Everything is read from the kernel's text files under `proc` and `sys` roots given to the probe, so a
test points it at a fixture tree (as prometheus client_python's process collector does). A source that
does not exist on this machine (no thermal zone, not a Pi) yields no readings and no error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from agent.reading import Sample

# (total, used, free) bytes of the filesystem holding the path, as shutil gives them.
DiskUsage = Callable[[Path], tuple[int, int, int]]
Vcgencmd = Callable[[], str | None]

FIRMWARE_THROTTLED = "devices/platform/soc/soc:firmware/get_throttled"

# get_throttled bits (Raspberry Pi firmware documentation): low half is "now", bits 16.. "since boot".
THROTTLE_BITS: tuple[tuple[int, str], ...] = (
    (0, "undervoltage_now_bool"),
    (1, "freq_capped_now_bool"),
    (2, "throttled_now_bool"),
    (3, "temp_limit_now_bool"),
    (16, "undervoltage_since_boot_bool"),
    (17, "freq_capped_since_boot_bool"),
    (18, "throttled_since_boot_bool"),
    (19, "temp_limit_since_boot_bool"),
)
_VCGENCMD_OUT = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")


# The same bits by meaning, for verdicts (`diag`): "now" in the low half, "since boot" above.
UNDER_VOLTAGE_NOW, FREQ_CAPPED_NOW, THROTTLED_NOW, TEMP_LIMIT_NOW = 1 << 0, 1 << 1, 1 << 2, 1 << 3
SINCE_BOOT = 0xF0000


def run_vcgencmd(tool: str | None = None, timeout_s: float = 5.0) -> str | None:
    """`vcgencmd get_throttled` output, or None where the tool is missing or fails (not a Pi)."""
    tool = tool or shutil.which("vcgencmd")
    if tool is None:
        return None
    try:
        done = subprocess.run(
            [tool, "get_throttled"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def disk_usage(path: Path) -> tuple[int, int, int]:
    usage = shutil.disk_usage(path)
    return usage.total, usage.used, usage.free


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None


def cpu_times(stat_text: str) -> tuple[int, int] | None:
    """(busy, total) jiffies from /proc/stat's aggregate line; iowait counts as idle, as top does."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]
            total = sum(values)
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            return total - idle, total
    return None


def meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as bytes per key."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return out


def throttled_flags(value: int) -> list[Sample]:
    return [
        Sample(metric=f"system.{name}", value=1.0 if value >> bit & 1 else 0.0)
        for bit, name in THROTTLE_BITS
    ]


class SystemProbe:
    """One reading per health figure. CPU use needs two rounds: it is the share since the last."""

    name = "system"

    def __init__(
        self,
        *,
        disk_path: Path,
        proc: Path = Path("/proc"),
        sys: Path = Path("/sys"),
        disk: DiskUsage = disk_usage,
        vcgencmd: Vcgencmd = run_vcgencmd,
    ) -> None:
        self._disk_path = disk_path
        self._proc = proc
        self._sys = sys
        self._disk = disk
        self._vcgencmd = vcgencmd
        self._last_cpu: tuple[int, int] | None = None

    def collect(self) -> list[Sample]:
        return (
            self._cpu()
            + self._memory()
            + self._load()
            + self._disk_space()
            + self._temperatures()
            + self._throttling()
        )

    def _cpu(self) -> list[Sample]:
        text = _read(self._proc / "stat")
        current = cpu_times(text) if text is not None else None
        previous, self._last_cpu = self._last_cpu, current
        if current is None or previous is None or current[1] <= previous[1]:
            return []
        busy = (current[0] - previous[0]) / (current[1] - previous[1])
        return [Sample(metric="system.cpu_percent", value=round(busy * 100, 1))]

    def _memory(self) -> list[Sample]:
        text = _read(self._proc / "meminfo")
        info = meminfo(text) if text is not None else {}
        if "MemTotal" not in info or "MemAvailable" not in info:
            return []
        total, available = info["MemTotal"], info["MemAvailable"]
        return [
            Sample(metric="system.memory_total_bytes", value=total),
            Sample(metric="system.memory_used_bytes", value=total - available),
            Sample(metric="system.memory_available_bytes", value=available),
        ]

    def _load(self) -> list[Sample]:
        text = _read(self._proc / "loadavg")
        if text is None:
            return []
        fields = text.split()
        names = ("system.load_1m", "system.load_5m", "system.load_15m")
        return [Sample(metric=n, value=float(v)) for n, v in zip(names, fields[:3], strict=False)]

    def _disk_space(self) -> list[Sample]:
        try:
            total, used, free = self._disk(self._disk_path)
        except OSError:
            return []
        tags = {"path": str(self._disk_path)}
        return [
            Sample(metric="system.disk_total_bytes", value=total, tags=tags),
            Sample(metric="system.disk_used_bytes", value=used, tags=tags),
            Sample(metric="system.disk_free_bytes", value=free, tags=tags),
        ]

    def _temperatures(self) -> list[Sample]:
        samples: list[Sample] = []
        for zone in sorted((self._sys / "class" / "thermal").glob("thermal_zone*")):
            raw = _read(zone / "temp")
            if raw is None or not raw.strip().lstrip("-").isdigit():
                continue  # a zone whose sensor is off answers EIO or ENODATA
            kind = (_read(zone / "type") or zone.name).strip()
            samples.append(
                Sample(
                    metric="system.temperature_celsius",
                    value=int(raw) / 1000,  # the kernel reports millidegrees
                    tags={"zone": kind},
                )
            )
        return samples

    def _throttling(self) -> list[Sample]:
        word = throttled_word(self._sys, self._vcgencmd)
        return [] if word is None else throttled_flags(word)


def throttled_word(sys_root: Path, vcgencmd: Vcgencmd) -> int | None:
    """The Pi firmware's get_throttled word, or None where there is none (not a Pi). The only
    reader of it: the system probe's readings and `diag`'s power verdict come from here."""
    # The firmware node is cheap and needs no tool; vcgencmd is the fallback on older kernels.
    raw = _read(sys_root / FIRMWARE_THROTTLED)
    if raw is not None and raw.strip():
        try:
            return int(raw.strip(), 16)
        except ValueError:
            return None
    out = vcgencmd()
    match = _VCGENCMD_OUT.search(out) if out else None
    return None if match is None else int(match.group(1), 0)

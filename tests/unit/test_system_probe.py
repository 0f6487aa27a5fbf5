"""SystemProbe against checked-in /proc and /sys fixture trees."""

import shutil
from collections.abc import Sequence
from pathlib import Path

from agent.probes.system import SystemProbe
from agent.reading import Sample

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _values(samples: Sequence[Sample]) -> dict[str, float]:
    return {s.metric: s.value for s in samples}


def _fixed_disk(path: Path) -> tuple[int, int, int]:
    return 32_000_000_000, 12_000_000_000, 20_000_000_000


def test_pi_tree_gives_memory_load_temperature_and_throttle_flags() -> None:
    """A Pi's files yield memory, load, the live thermal zone and the decoded get_throttled bits."""
    root = FIXTURES / "system_pi"
    probe = SystemProbe(
        disk_path=Path("/var/lib/village-agent"),
        proc=root / "proc",
        sys=root / "sys",
        disk=_fixed_disk,
        vcgencmd=lambda: None,
    )
    samples = probe.collect()
    values = _values(samples)
    assert values["system.memory_total_bytes"] == 3884396 * 1024
    assert values["system.memory_available_bytes"] == 2947036 * 1024
    assert values["system.memory_used_bytes"] == (3884396 - 2947036) * 1024
    assert (values["system.load_1m"], values["system.load_15m"]) == (0.52, 0.59)
    assert values["system.disk_free_bytes"] == 20_000_000_000
    temps = [s for s in samples if s.metric == "system.temperature_celsius"]
    assert [(s.value, s.tags["zone"]) for s in temps] == [(48.312, "cpu-thermal")]
    # 0x50005: under-voltage and throttled now, and both since boot.
    assert values["system.undervoltage_now_bool"] == 1
    assert values["system.throttled_now_bool"] == 1
    assert values["system.undervoltage_since_boot_bool"] == 1
    assert values["system.throttled_since_boot_bool"] == 1
    assert values["system.freq_capped_now_bool"] == 0
    assert values["system.temp_limit_since_boot_bool"] == 0
    assert "system.cpu_percent" not in values  # needs a second round


def test_not_a_pi_yields_no_throttle_or_temperature_and_no_error() -> None:
    """Without thermal zones, firmware node or vcgencmd the probe simply omits those readings."""
    root = FIXTURES / "system_bare"
    probe = SystemProbe(
        disk_path=Path("/"), proc=root / "proc", sys=root / "sys", vcgencmd=lambda: None
    )
    metrics = {s.metric for s in probe.collect()}
    assert "system.memory_used_bytes" in metrics
    assert "system.disk_free_bytes" in metrics
    assert not any("celsius" in m or m.endswith("_bool") for m in metrics)


def test_vcgencmd_is_the_fallback_for_throttle_flags() -> None:
    """Where the firmware node is missing, `vcgencmd get_throttled` output is decoded."""
    root = FIXTURES / "system_bare"
    probe = SystemProbe(
        disk_path=Path("/"),
        proc=root / "proc",
        sys=root / "sys",
        vcgencmd=lambda: "throttled=0x80000\n",
    )
    values = _values(probe.collect())
    assert values["system.temp_limit_since_boot_bool"] == 1
    assert values["system.undervoltage_now_bool"] == 0


def test_cpu_percent_is_the_busy_share_since_the_last_round(tmp_path: Path) -> None:
    """CPU use is computed from /proc/stat deltas; iowait counts as idle."""
    root = tmp_path / "tree"
    shutil.copytree(FIXTURES / "system_pi", root)
    probe = SystemProbe(
        disk_path=tmp_path, proc=root / "proc", sys=root / "sys", vcgencmd=lambda: None
    )
    probe.collect()
    # +100 user, +50 system, +400 idle, +50 iowait: 150 busy of 600.
    (root / "proc" / "stat").write_text("cpu  1100 0 550 8400 550 0 0 0 0 0\n")
    values = _values(probe.collect())
    assert values["system.cpu_percent"] == 25.0
    assert values["system.disk_free_bytes"] > 0  # the real filesystem under tmp_path


def test_missing_proc_is_not_an_error(tmp_path: Path) -> None:
    """An empty tree and an unreadable disk path give no readings instead of failing the round."""

    def no_disk(path: Path) -> tuple[int, int, int]:
        raise FileNotFoundError(path)

    probe = SystemProbe(
        disk_path=tmp_path / "gone",
        proc=tmp_path,
        sys=tmp_path,
        disk=no_disk,
        vcgencmd=lambda: None,
    )
    assert probe.collect() == []

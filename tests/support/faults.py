"""Support for the fault catalogue run: counting readings and the summary table."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRow:
    fault: str
    injected: str
    committed: int
    delivered: int
    lost: int
    duplicated: int


ROWS: list[FaultRow] = []


def arrived(collector: Collector, site: str) -> set[int]:
    """The seqs that arrived from `site` in any of its epochs. A file replaced after damage
    continues its predecessor's seqs under a new epoch, so a committed seq counts as delivered in
    whichever epoch it came."""
    seqs: set[int] = set()
    for epoch in collector.epochs(site):
        seqs |= collector.seqs(site, epoch)
    return seqs


def wait_arrived(collector: Collector, site: str, wanted: set[int], timeout_s: float) -> bool:
    """Wait until every seq in `wanted` arrived (in any epoch); True if they all did in time."""
    deadline = time.monotonic() + timeout_s
    while not wanted <= arrived(collector, site):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def tally(
    fault: str,
    injected: str,
    agent: AgentProcess,
    collector: Collector,
    site: str,
    *,
    excused: frozenset[int] = frozenset(),
) -> FaultRow:
    """Count what the agent committed against what arrived; record the row for the summary.

    Readings still in the buffer at the end are not lost: they wait for the next connection.
    Readings the buffer dropped to respect its bound are counted there, not here; `excused` are
    readings the fault itself destroyed (a damaged file), which the test accounts for itself.
    """
    last_seq, remaining = buffer_state(agent.state_dir)
    committed = set(range(1, last_seq + 1))
    missing = committed - arrived(collector, site)
    row = FaultRow(
        fault=fault,
        injected=injected,
        committed=len(committed),
        delivered=len(committed) - len(missing),
        lost=len(missing - remaining - excused),
        duplicated=collector.duplicates(site),
    )
    ROWS.append(row)
    return row


def record(
    fault: str, injected: str, *, committed: int, delivered: int, lost: int, duplicated: int
) -> None:
    """A row from a run that counted for itself (the simulator's virtual-time scenarios)."""
    ROWS.append(
        FaultRow(
            fault=fault,
            injected=injected,
            committed=committed,
            delivered=delivered,
            lost=lost,
            duplicated=duplicated,
        )
    )


def table(rows: list[FaultRow]) -> list[str]:
    header = ("fault", "injected by", "committed", "delivered", "lost", "duplicated")
    cells = [header] + [
        (r.fault, r.injected, str(r.committed), str(r.delivered), str(r.lost), str(r.duplicated))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs of our own at `path`, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def can_mount(tmp: Path) -> tuple[bool, str]:
    probe = tmp / "mount-probe"
    probe.mkdir(exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return False, f"cannot mount a tmpfs here: {result.stderr.strip()}"
    subprocess.run(["umount", str(probe)], check=False)
    return True, ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Card:
    """An ext4 file system in an image file, loop-mounted the way an SD card is (errors=remount-ro)."""

    image: Path
    mount: Path

    def device(self) -> str:
        """The loop device's kernel name (`loop3`): its ext4 controls are /sys/fs/ext4/loop3/."""
        found = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(self.mount)],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(found.stdout.strip()).name

    def attach(self) -> None:
        # errors=remount-ro: what Debian puts in fstab for the root file system, the SD card.
        options = "loop,errors=remount-ro"
        subprocess.run(
            ["mount", "-t", "ext4", "-o", options, str(self.image), str(self.mount)],
            check=True,
            capture_output=True,
            text=True,
        )

    def fail(self) -> None:
        """Make the kernel hit an ext4 error on the card, as a failing SD card does: the journal is
        aborted and, with errors=remount-ro, the file system turns read-only under open files.

        `mount -o remount,ro` cannot do this: the kernel refuses it while a file is open for
        writing (EBUSY), and the agent always has its buffer open.
        """
        trigger = Path("/sys/fs/ext4") / self.device() / "trigger_fs_error"
        trigger.write_text("village-agent test: the SD card failed\n")
        if writable(self.mount):
            raise AssertionError(f"{self.mount} still takes writes after {trigger}")

    def repair(self) -> None:
        """What the next boot does: unmount, `e2fsck -y`, mount again read-write. The agent must be
        stopped first: a file system with an aborted journal cannot be remounted read-write in place,
        and one with open files cannot be unmounted."""
        subprocess.run(["umount", str(self.mount)], check=True, capture_output=True, text=True)
        checked = subprocess.run(
            ["e2fsck", "-f", "-y", str(self.image)], capture_output=True, text=True, check=False
        )
        # 0: clean, 1: errors corrected. Anything else means the file system is still damaged.
        if checked.returncode not in (0, 1):
            raise AssertionError(f"e2fsck exit {checked.returncode}:\n{checked.stdout}")
        self.attach()


def writable(directory: Path) -> bool:
    probe = directory / ".write-probe"
    try:
        probe.write_bytes(b"x")
    except OSError as err:
        if err.errno in (errno.EROFS, errno.EIO):
            return False
        raise
    probe.unlink()
    return True


@contextlib.contextmanager
def ext4_card(path: Path, size_mb: int) -> Iterator[Card]:
    """A fresh ext4 card image under `path`, mounted at `path / "card"`; unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    card = Card(image=path / "card.img", mount=path / "card")
    with card.image.open("wb") as image:
        image.truncate(size_mb * 1024 * 1024)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", str(card.image)], check=True, capture_output=True, text=True
    )
    card.mount.mkdir(exist_ok=True)
    card.attach()
    try:
        yield card
    finally:
        # A test that failed half-way may leave the card mounted; lazily if something holds it.
        # `mount -o loop` set autoclear on the loop device: it goes once the file system is released.
        if os.path.ismount(card.mount):
            done = subprocess.run(["umount", str(card.mount)], capture_output=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(card.mount)], check=False)


def can_fail_ext4(tmp: Path) -> tuple[bool, str]:
    """Whether this machine can loop-mount an ext4 image and make the kernel fail it."""
    for tool, package in (
        ("mkfs.ext4", "e2fsprogs"),
        ("e2fsck", "e2fsprogs"),
        ("findmnt", "util-linux"),
    ):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (package {package})"
    try:
        with ext4_card(tmp / "ext4-probe", 8) as card:
            trigger = Path("/sys/fs/ext4") / card.device() / "trigger_fs_error"
            if not trigger.exists():
                return False, f"this kernel has no {trigger}: cannot fail an ext4 file system"
            card.fail()
    except (OSError, subprocess.CalledProcessError, AssertionError) as err:
        detail = getattr(err, "stderr", None) or err
        return False, f"cannot loop-mount and fail an ext4 image here: {detail!s}".strip()
    return True, ""

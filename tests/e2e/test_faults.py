"""The fault catalogue (shared/FAULTS.md) on real processes: nothing committed is ever lost.

Each test injects one fault into a real agent process talking to a real mosquitto, then checks with
the completeness-checking collector that every committed reading arrived (or still waits in the
buffer). The rows go into the summary table printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent.buffer.errors import BufferError
from agent.buffer.readonly import BufferView
from agent.config.load import load_config
from agent.reading import Reading
from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state, wait_until, write_config
from tests.support.certs import Pki
from tests.support.faults import (
    Card,
    arrived,
    can_fail_ext4,
    can_mount,
    ext4_card,
    tally,
    tmpfs,
    wait_arrived,
    writable,
)
from tests.support.mqtt_broker import Broker, BrokerFactory, TlsSetup

pytestmark = pytest.mark.faults

SITE = "test-site-01"
PREFIX = "desa/test"


def _config(tmp_path: Path, url: str, **broker: object) -> Path:
    return write_config(tmp_path, broker_url=url, broker={"batch_max_readings": 20, **broker})


def _finish(
    agent: AgentProcess,
    collector: Collector,
    fault: str,
    injected: str,
    *,
    excused: frozenset[int] = frozenset(),
) -> None:
    """Let the agent deliver everything, stop it cleanly, and assert nothing was lost."""
    last_seq, _ = buffer_state(agent.state_dir)
    wait_arrived(collector, SITE, set(range(1, last_seq + 1)) - excused, 30)
    assert agent.terminate() == 0
    row = tally(fault, injected, agent, collector, SITE, excused=excused)
    assert row.lost == 0, f"{row}\n{agent.log()[-3000:]}"


def _quiet(collector: Collector, quiet_s: float = 0.3, timeout_s: float = 10.0) -> None:
    """Wait until nothing more has arrived at the collector for quiet_s."""
    deadline = time.monotonic() + timeout_s
    collector.absorb()
    seen, since = collector.messages, time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.05)
        collector.absorb()
        if collector.messages != seen:
            seen, since = collector.messages, time.monotonic()


class EventListener:
    """Subscribes to the alarm topic `{prefix}/+/event`."""

    def __init__(self, broker: Broker) -> None:
        self.events: list[dict[str, object]] = []
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = lambda _c, _u, m: self.events.append(json.loads(m.payload))
        self._client.connect(broker.host, broker.port)
        self._client.subscribe(f"{PREFIX}/+/event", qos=1)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_broker_crash_kill_9_then_restart(tmp_path: Path, broker: Broker) -> None:
    """Row 5: the broker is killed with SIGKILL; every unacknowledged row is resent after."""
    with (
        Collector(broker.url(), PREFIX) as collector,
        AgentProcess(_config(tmp_path, broker.url())) as agent,
    ):
        wait_until(lambda: len(collector.seqs(SITE)) > 20, 20, agent.log())
        broker.kill()
        collector.stop()
        before, _ = buffer_state(agent.state_dir)
        wait_until(lambda: buffer_state(agent.state_dir)[0] > before + 30, 20)
        agent.pause()
        broker.restart()
        collector.start()
        agent.resume()
        _finish(agent, collector, "5 broker crash", "kill -9 mosquitto, restart")


def test_broker_hang_beyond_keepalive(tmp_path: Path, broker: Broker) -> None:
    """Row 6: SIGSTOP the broker past the keepalive: noticed, reconnected, resent, not wedged."""
    with (
        Collector(broker.url(), PREFIX) as collector,
        AgentProcess(_config(tmp_path, broker.url(), keepalive_s=5)) as agent,
    ):
        wait_until(lambda: len(collector.seqs(SITE)) > 20, 20, agent.log())
        agent.wait_status("broker_state", lambda s: s == "connected", 20)
        broker.pause()
        # keepalive 5 s: paho sends PINGREQ after 5 s of silence and gives up 5 s later.
        agent.wait_status("broker_state", lambda s: s != "connected", 20)
        broker.resume()
        agent.wait_status("broker_state", lambda s: s == "connected", 20)
        _finish(agent, collector, "6 broker hang", "SIGSTOP mosquitto > keepalive")
    assert "broker_disconnected" in agent.log()


def test_acl_revoked_then_restored(tmp_path: Path, broker_factory: BrokerFactory) -> None:
    """Row 7: a revoked write rule gets MQTT 5 refusals; rows stay and arrive once it is back."""
    allow = f"topic readwrite {PREFIX}/#\n"
    broker = broker_factory(acl=allow)
    with (
        Collector(broker.url(), PREFIX) as collector,
        AgentProcess(_config(tmp_path, broker.url())) as agent,
    ):
        wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
        broker.set_acl(f"topic read {PREFIX}/#\ntopic readwrite {PREFIX}/+/status\n")
        refused = agent.wait_status("rejected_total", lambda n: n >= 2, 20)
        backlog = agent.wait_status("backlog", lambda n: n > 20, 20)["backlog"]
        assert backlog > 20
        # One more round committed while refused: it carries the refusal count, held back too.
        held = agent.wait_status("last_seq", lambda n: n > refused["last_seq"], 20)["last_seq"]
        broker.set_acl(allow)
        _finish(agent, collector, "7 ACL refuses topic", "SIGHUP with write rule removed")
    # The alarm reading: the refusal counter measured while the broker refused reached the office
    # once the write rule was back, in the rows the refusals had not deleted.
    alarms = [
        r
        for r in collector.readings(SITE)
        if r.metric == "publisher.rejected_total" and refused["last_seq"] < r.seq <= held
    ]
    assert alarms and min(r.value for r in alarms) >= refused["rejected_total"], alarms
    assert "broker_rejected_message" in agent.log()


def test_wrong_password_backs_off_and_recovers(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """Row 8: CONNACK refused; the agent backs off, keeps measuring, and delivers once fixed."""
    collector_secret = "collector-secret"  # noqa: S105 - a throwaway test broker's password
    broker = broker_factory(passwords={SITE: "right-password", "collector": collector_secret})
    secret = tmp_path / "password"
    secret.write_text("wrong-password\n")
    secret.chmod(0o600)
    config = _config(
        tmp_path, broker.url(), username=SITE, password_file=str(secret), allow_plaintext=True
    )
    with (
        Collector(
            broker.url(), PREFIX, username="collector", password=collector_secret
        ) as collector,
        AgentProcess(config) as agent,
    ):
        status = agent.wait_status("broker_state", lambda s: s == "refused", 20)
        assert "Not authorized" in status["last_error"]
        agent.wait_status("backlog", lambda n: n > 20, 20)
        secret.write_text("right-password\n")
        agent.wait_status("broker_state", lambda s: s == "connected", 20)
        _finish(agent, collector, "8 wrong password", "broker password file")
    assert "wrong-password" not in agent.log() and "right-password" not in agent.log()


def test_hostname_mismatch_is_refused(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki
) -> None:
    """Row 9: a certificate for another host is refused; nothing sent, everything kept."""
    other = pki.ca.issue(tmp_path / "other", "other", hostnames=["collector.other.example"])
    broker = broker_factory(
        tls=TlsSetup(ca_file=pki.ca.cert_file, cert_file=other.cert_file, key_file=other.key_file)
    )
    config = _config(tmp_path, broker.url(), ca_file=str(pki.ca.cert_file))
    with AgentProcess(config) as agent:
        status = agent.wait_status("last_error", lambda e: bool(e) and "another host" in e, 20)
        assert status["broker_state"] == "unreachable"
        assert agent.terminate() == 0
    last_seq, remaining = buffer_state(agent.state_dir)
    assert last_seq > 0 and remaining == set(range(1, last_seq + 1))


def test_certificate_not_yet_valid_says_the_clock_may_be_wrong(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki
) -> None:
    """Row 10: a clock before the certificate's validity gives a clear reason, nothing is lost."""
    future = datetime.now(UTC) + timedelta(days=400)
    early = pki.ca.issue(
        tmp_path / "early",
        "early",
        hostnames=["127.0.0.1"],
        not_before=future,
        not_after=future + timedelta(days=30),
    )
    broker = broker_factory(
        tls=TlsSetup(ca_file=pki.ca.cert_file, cert_file=early.cert_file, key_file=early.key_file)
    )
    config = _config(tmp_path, broker.url(), ca_file=str(pki.ca.cert_file))
    with AgentProcess(config) as agent:
        status = agent.wait_status("last_error", lambda e: bool(e) and "not yet valid" in e, 20)
        assert "clock" in status["last_error"]
        assert agent.terminate() == 0
    _, remaining = buffer_state(agent.state_dir)
    assert remaining


def _connected_at(agent: AgentProcess, log_from: int) -> float | None:
    """When this process logged `broker_connected` (before it could send anything), or None."""
    for line in agent.log_path.read_bytes()[log_from:].splitlines():
        if b'"broker_connected"' in line:
            stamp = json.loads(line)["timestamp"]
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None


def test_hundred_random_kill_9_lose_nothing(tmp_path: Path, broker: Broker) -> None:
    """Rows 12 and 13: 100 SIGKILLs at random moments, then a clean run: 0 lost, file intact,
    duplicates no more than the in-flight windows the kills cut, and never a seq given twice."""
    rng = random.Random(13)
    config = write_config(
        tmp_path, broker_url=broker.url(), interval_s=0.1, broker={"batch_max_readings": 20}
    )
    settings = load_config(config).broker
    # A kill can only leave behind what was in flight: inflight_max messages of at most
    # batch_max_readings each, delivered but not yet deleted.
    window = settings.inflight_max * settings.batch_max_readings
    held: set[int] = set()  # in the buffer when the last process died
    exposed: set[int] = set()  # of those, already at the collector: the next one may resend them
    # Per process that reached the broker, and so could resend: when, and what was exposed.
    starts: list[tuple[float, set[int], set[int]]] = []
    with Collector(broker.url(), PREFIX) as collector:
        for _ in range(100):
            agent = AgentProcess(config)
            log_from = agent.log_path.stat().st_size if agent.log_path.exists() else 0
            agent.start()
            time.sleep(rng.uniform(0.0, 0.9))
            agent.kill()
            connected_at = _connected_at(agent, log_from)
            if connected_at is not None:
                starts.append((connected_at, held, exposed))
                _quiet(collector)  # the broker passes on what this one sent before it died
            with contextlib.suppress(BufferError):  # killed before the buffer existed
                held = buffer_state(agent.state_dir)[1]
                exposed = held & collector.seqs(SITE)
            assert len(exposed) <= window, sorted(exposed)
        log_from = agent.log_path.stat().st_size
        with AgentProcess(config) as agent:
            wait_until(lambda: agent.status().get("readings_acked", 0) > 0, 20, agent.log())
            _finish(agent, collector, "12/13 kill -9 x100", "SIGKILL at random 0-0.9 s")
        final_at = _connected_at(agent, log_from)
        assert final_at is not None
        starts.append((final_at, held, exposed))
        conflicts = collector.conflicts(SITE)
    conn = sqlite3.connect(agent.state_dir / "buffer.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    # What a process could resend: rows exposed when its predecessor died, and rows of the buffer
    # whose first copy reached the collector before this process connected (a late arrival).
    arrivals = collector.arrivals(SITE)
    resendable = sum(
        len(seen | {seq for seq in rows if arrivals.get(seq, time.time()) < at})
        for at, rows, seen in starts
    )
    duplicates = collector.duplicates(SITE)
    bound = f"{duplicates=} {resendable=} connected={len(starts)} {window=}"
    assert duplicates <= resendable <= len(starts) * window, bound
    # A repeat must be the same reading sent again: a seq given to a new reading after a kill
    # would make every consumer that dedupes on (site, seq) drop that reading as a duplicate.
    assert not conflicts, conflicts[:3]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Path:
    ok, reason = can_mount(tmp_path)
    if not ok:
        pytest.skip(reason)
    return tmp_path / "card"


def test_disk_full_waits_in_memory_alarms_and_recovers(
    tmp_path: Path, broker: Broker, small_tmpfs: Path
) -> None:
    """Row 14: below the free-space floor the agent stops writing, alarms, keeps running, and
    commits what waited in memory once space returns."""
    with tmpfs(small_tmpfs, "16m") as card:
        config = write_config(
            tmp_path,
            broker_url=broker.url(),
            extra={"state_dir": str(card / "state"), "buffer": {"min_free_mb": 6}},
        )
        listener = EventListener(broker)
        try:
            with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
                wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
                free = os.statvfs(card).f_bavail * os.statvfs(card).f_frsize
                ballast = card / "ballast"
                ballast.write_bytes(b"\0" * (free - 3 * 1024 * 1024))
                status = agent.wait_status("pending_in_memory", lambda n: n > 30, 20)
                assert "free" in status["last_error"]
                wait_until(
                    lambda: any(e["event"] == "buffer_unwritable" for e in listener.events), 10
                )
                assert agent.running()
                ballast.unlink()
                agent.wait_status("pending_in_memory", lambda n: n == 0, 20)
                wait_until(
                    lambda: any(
                        r.metric == "event.buffer_unwritable_s" for r in collector.readings(SITE)
                    ),
                    20,
                )
                _finish(agent, collector, "14 disk full", "tmpfs filled with ballast")
        finally:
            listener.stop()


def test_card_refusing_writes_keeps_running_and_recovers(
    tmp_path: Path, broker: Broker, small_tmpfs: Path
) -> None:
    """Row 15, the fault the agent survives in the same process: the card refuses every write
    (ENOSPC from the file system itself, the floor switched off): no crash, an alarm, rounds wait
    in memory, and recovery by itself once writes succeed again.

    The card truly turning read-only is the next test; there the file system cannot take writes
    again until it is unmounted and checked, so recovery goes through a restart.
    """
    with tmpfs(small_tmpfs, "8m") as card:
        config = write_config(
            tmp_path,
            broker_url=broker.url(),
            extra={"state_dir": str(card / "state"), "buffer": {"min_free_mb": 0}},
        )
        listener = EventListener(broker)
        try:
            with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
                wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
                ballast = card / "ballast"
                fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    while os.write(fd, b"\0" * 65536):
                        pass
                except OSError:
                    pass  # ENOSPC: the card is full, which is the point
                finally:
                    os.close(fd)
                wait_until(lambda: "buffer_write_failed" in agent.log(), 20, agent.log())
                wait_until(
                    lambda: any(e["event"] == "buffer_unwritable" for e in listener.events), 10
                )
                time.sleep(1.0)
                assert agent.running()
                ballast.unlink()
                agent.wait_status("pending_in_memory", lambda n: n == 0, 20)
                _finish(agent, collector, "15 card refuses writes", "tmpfs filled to ENOSPC")
        finally:
            listener.stop()


@pytest.fixture
def card(tmp_path: Path) -> Iterator[Card]:
    ok, reason = can_fail_ext4(tmp_path)
    if not ok:
        pytest.skip(reason)
    with ext4_card(tmp_path / "sd", 64) as mounted:
        yield mounted


def test_card_turning_read_only_keeps_running_alarms_and_recovers(
    tmp_path: Path, broker: Broker, card: Card
) -> None:
    """Row 15: the state file system really turns read-only under the running agent (an ext4
    error on a card mounted errors=remount-ro): no crash, a loud alarm, what the card holds is
    still published; after fsck and a restart, what the next boot does, nothing committed is lost.

    The agent cannot recover in the same process here, and no gateway could: the kernel keeps an
    ext4 whose journal aborted read-only until it is unmounted and checked, and it cannot be
    unmounted while the agent holds its buffer open. Rounds measured meanwhile wait in memory
    and are gone with the process: they were never committed.
    """
    config = write_config(
        tmp_path,
        broker_url=broker.url(),
        # keepalive 10 s: the broker's 1-2 s pause below must not cost the connection.
        broker={"batch_max_readings": 20, "keepalive_s": 10},
        extra={"state_dir": str(card.mount / "state")},
    )
    listener = EventListener(broker)
    try:
        with Collector(broker.url(), PREFIX) as collector:
            with AgentProcess(config) as agent:
                wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
                # A backlog on the card when it fails, so that there is something to publish from
                # it: the broker stops answering for a moment and rounds pile up on disk.
                broker.pause()
                before, _ = buffer_state(agent.state_dir)
                wait_until(lambda: buffer_state(agent.state_dir)[0] > before + 30, 10)
                card.fail()
                wait_until(lambda: "buffer_write_failed" in agent.log(), 10, agent.log())
                # No write reaches the card from here on: this is everything that was committed.
                committed, _ = buffer_state(agent.state_dir)
                assert committed - len(collector.seqs(SITE)) > 30
                broker.resume()
                wait_until(
                    lambda: any(e["event"] == "buffer_unwritable" for e in listener.events),
                    15,
                    agent.log(),
                )
                alarm = next(e for e in listener.events if e["event"] == "buffer_unwritable")
                assert "buffer.sqlite" in str(alarm["detail"]), alarm
                assert collector.wait_for(SITE, range(1, committed + 1), 30), agent.log()[-3000:]
                time.sleep(3.0)  # ten more rounds on the read-only card
                assert not writable(card.mount)
                assert agent.running()
                # Loud, not a flood: one alarm at the start, the next only after ten minutes.
                assert agent.log().count('"buffer_write_failed"') == 1
                # The stop before the repair (the reboot's SIGTERM) is a clean one, too.
                assert agent.terminate() == 0, agent.log()[-3000:]
                assert "Traceback" not in agent.log(), agent.log()[-3000:]
            card.repair()
            after_fsck, remaining = buffer_state(agent.state_dir)
            # fsck kept every commit, so the next agent cannot give a committed seq again.
            assert after_fsck >= committed
            resendable = remaining & collector.seqs(SITE)  # acknowledged, the delete refused
            with AgentProcess(config) as agent:
                wait_until(lambda: agent.status().get("readings_acked", 0) > 0, 20, agent.log())
                assert not list(agent.state_dir.glob("buffer.sqlite.corrupt-*"))
                _finish(agent, collector, "15 SD card read-only", "ext4 error, errors=remount-ro")
            conflicts = collector.conflicts(SITE)
    finally:
        listener.stop()
    assert collector.duplicates(SITE) <= len(resendable)
    assert not conflicts, conflicts[:3]


def test_corrupt_buffer_is_quarantined_without_a_crash_loop(tmp_path: Path, broker: Broker) -> None:
    """Row 16: a damaged buffer is moved aside, a fresh one continues seq under a new epoch, an
    event says so."""
    config = _config(tmp_path, broker.url())
    with Collector(broker.url(), PREFIX) as collector:
        with AgentProcess(config) as agent:
            wait_until(lambda: len(collector.seqs(SITE)) > 50, 20, agent.log())
            assert agent.terminate() == 0
        (old_epoch,) = collector.epochs(SITE)
        delivered_before = collector.seqs(SITE, old_epoch)
        last_before, left_in_file = buffer_state(agent.state_dir)
        path = agent.state_dir / "buffer.sqlite"
        data = bytearray(path.read_bytes())
        data[:4096] = b"\xde\xad\xbe\xef" * 1024
        path.write_bytes(bytes(data))
        with AgentProcess(config) as agent:
            wait_until(
                lambda: any(
                    r.metric == "event.buffer_quarantined"
                    for e in collector.epochs(SITE)
                    for r in collector.readings(SITE, e)
                ),
                20,
                agent.log(),
            )
            assert agent.running()
            assert list(agent.state_dir.glob("buffer.sqlite.corrupt-*"))
            (new_epoch,) = set(collector.epochs(SITE)) - {old_epoch}
            with BufferView.open(agent.state_dir) as view:
                assert view.backlog().epoch == new_epoch
            new_seqs = collector.seqs(SITE, new_epoch)
            assert min(new_seqs) > last_before
            # Rows the first agent committed in its last moments and had not sent yet went down
            # with the damaged file (kept aside for a technician): that loss is the fault's own.
            destroyed = frozenset(left_in_file - delivered_before)
            _finish(
                agent, collector, "16 corrupt buffer", "first page overwritten", excused=destroyed
            )
    # Moved aside once, as it was, for a technician; the alarm reading names it and the seq the
    # fresh file continues after. Nothing it held was still waiting to be sent.
    quarantined = agent.state_dir.glob("buffer.sqlite.corrupt-*")
    (kept,) = [f for f in quarantined if not f.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes() == bytes(data)
    alarms = [
        r for r in collector.readings(SITE, new_epoch) if r.metric == "event.buffer_quarantined"
    ]
    # Nothing in a file whose first page is gone reads; what it held unsent is counted lost.
    lost = str(int(alarms[0].value))
    assert [dict(r.tags) for r in alarms] == [
        {"file": kept.name, "last_seq": str(last_before), "recovered": "0", "lost": lost}
    ]
    assert int(lost) >= len(destroyed)
    # At most the rounds committed after the last send: the stop drains what is in flight only.
    assert len(left_in_file - delivered_before) <= 5 * 60, sorted(left_in_file - delivered_before)


def test_hung_agent_stops_the_watchdog_pings(tmp_path: Path, broker: Broker) -> None:
    """Row 17: while the agent is stopped (SIGSTOP) systemd hears no WATCHDOG=1; then it does."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify.sock")
    notify.bind(address)
    notify.settimeout(0.2)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}

    def drain() -> list[str]:
        """Every message until the socket has been quiet for 0.2 s."""
        messages = []
        try:
            while True:
                messages.append(notify.recv(4096).decode())
        except TimeoutError:
            return messages

    def heard_within(seconds: float, wanted: str) -> bool:
        """Whether a message containing `wanted` arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                if wanted in notify.recv(4096).decode():
                    return True
        return False

    try:
        with AgentProcess(_config(tmp_path, broker.url()), env=env) as agent:
            assert heard_within(20, "READY=1"), agent.log()
            assert heard_within(10, "WATCHDOG=1"), agent.log()
            agent.pause()
            # What the agent sent before it stopped; then twice WatchdogSec of silence.
            drain()
            assert not heard_within(2.0, "WATCHDOG=1")
            agent.resume()
            assert heard_within(10, "WATCHDOG=1"), agent.log()
            assert agent.terminate() == 0
            assert any("STOPPING=1" in m for m in drain())
    finally:
        notify.close()


def test_bad_permissions_and_missing_files_exit_78(tmp_path: Path) -> None:
    """Row 21: a world-readable key and a missing CA: exit 78 with the file, key and fix named."""
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o644)
    cert = tmp_path / "client.crt"
    cert.write_text("x")
    config = write_config(
        tmp_path,
        broker_url="mqtts://127.0.0.1:8883",
        broker={
            "ca_file": str(tmp_path / "missing-ca.crt"),
            "cert_file": str(cert),
            "key_file": str(key),
        },
    )
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78
    assert f"At 'broker.key_file': {key} is readable by every user" in result.stderr
    assert f"chmod 0640 {key}" in result.stderr
    assert f"At 'broker.ca_file': no such file {tmp_path / 'missing-ca.crt'}" in result.stderr


def _wal_cut(path: Path) -> None:
    wal = Path(f"{path}-wal")
    wal.write_bytes(wal.read_bytes()[: wal.stat().st_size // 2])


def _wal_garbage(path: Path) -> None:
    wal = Path(f"{path}-wal")
    data = bytearray(wal.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = random.Random(17).randbytes(4096)
    wal.write_bytes(bytes(data))


def _checkpointed(path: Path) -> None:
    """Fold the -wal into the file, as the last close does, so that damage hits the file's pages."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _page_garbage(path: Path) -> None:
    """Garbage over a page of the rounds themselves (SQLite's dbstat says which page holds what):
    a page of the series' names that every round uses would cost them all (counted as lost)."""
    _checkpointed(path)
    conn = sqlite3.connect(path)
    try:
        (size,) = conn.execute("PRAGMA page_size").fetchone()
        leaves = [
            n
            for (n,) in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = 'rounds' AND pagetype = 'leaf' "
                "ORDER BY pageno"
            )
        ]
    finally:
        conn.close()
    assert len(leaves) >= 3, leaves  # a page in the middle, with readable rounds either side
    middle = leaves[len(leaves) // 2] - 1
    data = bytearray(path.read_bytes())
    data[middle * size : (middle + 1) * size] = random.Random(23).randbytes(size)
    path.write_bytes(bytes(data))


def _one_bad_round(path: Path) -> None:
    _checkpointed(path)
    conn = sqlite3.connect(path)
    (first,) = conn.execute(
        "SELECT first_seq FROM rounds ORDER BY first_seq LIMIT 1 OFFSET "
        "(SELECT COUNT(*) / 2 FROM rounds)"
    ).fetchone()
    conn.execute("UPDATE rounds SET body = x'789c0102' WHERE first_seq = ?", (first,))
    conn.commit()
    conn.close()


DAMAGE = {
    "-wal deleted": lambda path: Path(f"{path}-wal").unlink(),
    "-wal cut in half": _wal_cut,
    "-wal 4 KiB of garbage": _wal_garbage,
    "database 0 bytes": lambda path: path.write_bytes(b""),
    "a page of garbage": _page_garbage,
    "one round's blob": _one_bad_round,
}


# Damage that leaves the file knowing its epoch and its last seq: the series goes on.
PROVEN = ("a page of garbage", "one round's blob")


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_buffer_files_are_salvaged_counted_and_published(
    tmp_path: Path, broker: Broker, damage: str
) -> None:
    """Rows 25, 26: the agent is killed with a backlog, then its files are damaged. The next start
    quarantines the file, delivers every round that still reads with its seq, and publishes how
    many readings were recovered and lost: every committed reading arrives or is counted."""
    config = _config(tmp_path, broker.url())
    with Collector(broker.url(), PREFIX) as collector:
        with AgentProcess(config) as agent:
            wait_until(lambda: len(collector.seqs(SITE)) > 20, 20, agent.log())
            broker.pause()
            before, _ = buffer_state(agent.state_dir)
            wait_until(lambda: buffer_state(agent.state_dir)[0] > before + 600, 30)
            agent.kill()
        broker.resume()
        _quiet(collector, quiet_s=1.0)
        committed, _ = buffer_state(agent.state_dir)
        (before_epoch,) = collector.epochs(SITE)
        delivered_before = collector.seqs(SITE)
        path = agent.state_dir / "buffer.sqlite"
        DAMAGE[damage](path)

        def quarantined() -> list[Reading]:
            return [
                r
                for epoch in collector.epochs(SITE)
                for r in collector.readings(SITE, epoch)
                if r.metric == "event.buffer_quarantined"
            ]

        with AgentProcess(config) as agent:
            wait_until(quarantined, 30, agent.log())
            # Oldest first: once newer readings arrive, every salvaged one went before them.
            wait_until(lambda: max(arrived(collector, SITE)) > committed + 100, 30, agent.log())
            (event,) = quarantined()
            # Gone for good: committed, never delivered before the damage nor salvaged after.
            gone = frozenset(set(range(1, committed + 1)) - arrived(collector, SITE))
            epochs = collector.epochs(SITE)
            # The fresh file keeps the epoch only where the damaged file proved its last seq.
            assert len(epochs) == (1 if damage in PROVEN else 2), epochs
            (after_epoch,) = epochs[-1:]
            assert (after_epoch == before_epoch) == (damage in PROVEN)
            new_seqs = collector.seqs(SITE, after_epoch) - set(range(1, committed + 1))
            assert min(new_seqs) > committed  # no seq given twice within an epoch
            _finish(agent, collector, f"25/26 {damage}", "kill -9, then the damage", excused=gone)
    recovered, lost = int(event.tags["recovered"]), int(event.tags["lost"])
    unsent = committed - len(delivered_before)
    print(
        f"\n{damage}: committed {committed}, unsent at the kill {unsent}, recovered {recovered},"
        f" counted lost {lost}, really lost {len(gone)}"
    )
    assert len(gone) <= lost, (damage, len(gone), lost)  # never silent
    assert event.value == lost
    assert len(list(agent.state_dir.glob("buffer.sqlite.corrupt-*-1"))) == 1
    if damage in ("a page of garbage", "one round's blob"):
        # Only what the damaged page or round held: the rest of the backlog came through.
        assert recovered > 0 and len(gone) < unsent


def _held_lost_event(agent: AgentProcess, collector: Collector) -> Reading:
    """The one `event.buffer_held_lost` reading the started agent publishes."""

    def events() -> list[Reading]:
        return [r for r in collector.readings(SITE) if r.metric == "event.buffer_held_lost"]

    wait_until(events, 20, agent.log())
    (event,) = events()
    return event


def _fill(card: Path) -> Path:
    """Fill the file system to ENOSPC; return the ballast file."""
    ballast = card / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 65536):
            pass
    except OSError:
        pass  # ENOSPC: the card is full, which is the point
    finally:
        os.close(fd)
    return ballast


@pytest.mark.parametrize("before", ["restart", "first start"])
def test_disk_full_at_start_up_measures_in_memory_and_delivers_after(
    tmp_path: Path, broker: Broker, small_tmpfs: Path, before: str
) -> None:
    """Row 28: the state file system is full (ENOSPC) before `run`, on a buffer that exists or on
    none yet. No exit 73 and no restart loop: the agent measures, holds rounds in memory, alarms,
    and opens the buffer and delivers once space returns."""
    with tmpfs(small_tmpfs, "8m") as card:
        config = write_config(
            tmp_path,
            broker_url=broker.url(),
            extra={
                "state_dir": str(card / "state"),
                "status_dir": str(tmp_path / "status"),
                "buffer": {"min_free_mb": 0},
            },
        )
        listener = EventListener(broker)
        try:
            with Collector(broker.url(), PREFIX) as collector:
                if before == "restart":
                    with AgentProcess(config) as agent:
                        wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
                        assert agent.terminate() == 0
                else:
                    (card / "state").mkdir()
                delivered_before = len(collector.seqs(SITE))
                ballast = _fill(card)
                with AgentProcess(config) as agent:
                    wait_until(
                        lambda: any(e["event"] == "buffer_unwritable" for e in listener.events),
                        20,
                        agent.log(),
                    )
                    held = agent.wait_status("pending_in_memory", lambda n: n > 30, 20)
                    assert agent.running(), agent.log()[-3000:]
                    assert held["last_error"]
                    ballast.unlink()
                    agent.wait_status("pending_in_memory", lambda n: n == 0, 30)
                    wait_until(
                        lambda: any(
                            r.metric == "event.buffer_unwritable_s"
                            for r in collector.readings(SITE)
                        ),
                        20,
                        agent.log(),
                    )
                    assert "buffer_opened_late" in agent.log()
                    _finish(agent, collector, f"28 disk full at {before}", "tmpfs full before run")
                assert "Traceback" not in agent.log(), agent.log()[-3000:]
                print(
                    f"\n{before}: held in memory {held['pending_in_memory']} readings, "
                    f"delivered after space returned {len(collector.seqs(SITE)) - delivered_before}"
                )
        finally:
            listener.stop()


def test_rounds_held_at_a_stop_are_counted_at_the_next_start(
    tmp_path: Path, broker: Broker, small_tmpfs: Path
) -> None:
    """Row 29: below the free-space floor rounds wait in memory; SIGTERM then loses them with the
    process. The count survives (beside the buffer and in the status file), and the next start adds
    it to buffer.dropped_total and publishes event.buffer_held_lost: the loss is not silent."""
    with tmpfs(small_tmpfs, "16m") as card:
        config = write_config(
            tmp_path,
            broker_url=broker.url(),
            extra={"state_dir": str(card / "state"), "buffer": {"min_free_mb": 6}},
        )
        with Collector(broker.url(), PREFIX) as collector:
            with AgentProcess(config) as agent:
                wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
                free = os.statvfs(card).f_bavail * os.statvfs(card).f_frsize
                ballast = card / "ballast"
                ballast.write_bytes(b"\0" * (free - 3 * 1024 * 1024))
                agent.wait_status("pending_in_memory", lambda n: n > 30, 20)
                assert agent.terminate() == 0
            final = json.loads((agent.state_dir / "status.json").read_text())
            held = final["pending_in_memory"] + final["lost_unrecorded"]
            assert held > 30
            saved = json.loads((agent.state_dir / "held-lost.json").read_text())
            assert saved == {"readings": held}
            ballast.unlink()
            with AgentProcess(config) as agent:
                event = _held_lost_event(agent, collector)
                assert event.value == held
                dropped = [
                    r.value for r in collector.readings(SITE) if r.metric == "buffer.dropped_total"
                ]
                assert dropped[-1] >= held
                assert not (agent.state_dir / "held-lost.json").exists()
                _finish(agent, collector, "29 stop while holding rounds", "floor, then SIGTERM")
            # Counted once: a further restart does not report them again.
            with AgentProcess(config) as agent:
                wait_until(lambda: agent.status().get("readings_acked", 0) > 0, 20, agent.log())
                assert agent.terminate() == 0
            events = [r for r in collector.readings(SITE) if r.metric == "event.buffer_held_lost"]
            assert len(events) == 1
    print(f"\nheld in memory at the stop and counted at the next start: {held} readings")


def test_a_round_damaged_while_running_is_quarantined_and_the_rest_delivered(
    tmp_path: Path, broker: Broker
) -> None:
    """Row 26 while running: a round's blob goes bad under the running agent (bit rot). The read
    that meets it makes the agent quarantine the file at the next round and salvage the rest:
    only that round is lost, counted in event.buffer_quarantined; no crash, no stalled delivery."""
    config = _config(tmp_path, broker.url())
    with Collector(broker.url(), PREFIX) as collector, AgentProcess(config) as agent:
        wait_until(lambda: len(collector.seqs(SITE)) > 20, 20, agent.log())
        broker.pause()
        before, _ = buffer_state(agent.state_dir)
        wait_until(lambda: buffer_state(agent.state_dir)[0] > before + 200, 30)
        conn = sqlite3.connect(agent.state_dir / "buffer.sqlite", timeout=10)
        first, n = conn.execute(
            # Well past what is in flight: rows in flight are deleted on their ack, never read.
            "SELECT first_seq, n FROM rounds WHERE first_seq > ? ORDER BY first_seq LIMIT 1",
            (before + 150,),
        ).fetchone()
        conn.execute("UPDATE rounds SET body = x'789c0102' WHERE first_seq = ?", (first,))
        conn.commit()
        conn.close()
        broker.resume()
        wait_until(
            lambda: any(r.metric == "event.buffer_quarantined" for r in collector.readings(SITE)),
            30,
            agent.log(),
        )
        (event,) = [r for r in collector.readings(SITE) if r.metric == "event.buffer_quarantined"]
        assert (event.tags["lost"], event.value) == (str(n), n)
        gone = frozenset(range(first, first + n))
        _finish(
            agent, collector, "26 one round damaged while running", "blob overwritten", excused=gone
        )
        assert not gone & collector.seqs(SITE)
    assert "buffer_damaged_while_running" in agent.log()
    print(f"\nround of {n} readings damaged while running: recovered {event.tags['recovered']}")


def test_read_only_card_at_start_up_runs_degraded_and_counts_what_it_held(
    tmp_path: Path, broker: Broker, card: Card
) -> None:
    """Row 28, read-only: the card failed (ext4 error, errors=remount-ro) before `run`. The agent
    does not exit into a restart loop: it measures, alarms and holds rounds in memory; its stop
    loses them, and that count (kept in the status file on another file system) is published at
    the first start after the card is repaired."""
    config = write_config(
        tmp_path,
        broker_url=broker.url(),
        extra={"state_dir": str(card.mount / "state"), "status_dir": str(tmp_path / "status")},
    )
    listener = EventListener(broker)
    try:
        with Collector(broker.url(), PREFIX) as collector:
            with AgentProcess(config) as agent:
                wait_until(lambda: len(collector.seqs(SITE)) > 10, 20, agent.log())
                assert agent.terminate() == 0
            card.fail()
            with AgentProcess(config) as agent:
                wait_until(
                    lambda: any(e["event"] == "buffer_unwritable" for e in listener.events),
                    20,
                    agent.log(),
                )
                agent.wait_status("pending_in_memory", lambda n: n > 30, 20)
                assert agent.running(), agent.log()[-3000:]
                assert agent.terminate() == 0, agent.log()[-3000:]
            assert "Traceback" not in agent.log(), agent.log()[-3000:]
            final = json.loads((tmp_path / "status" / "status.json").read_text())
            held = final["pending_in_memory"] + final["lost_unrecorded"]
            card.repair()
            with AgentProcess(config) as agent:
                event = _held_lost_event(agent, collector)
                assert event.value == held
                _finish(
                    agent, collector, "28 SD card read-only at start-up", "ext4 error before run"
                )
    finally:
        listener.stop()
    print(f"\nread-only card at start-up: {held} readings held, then counted at the next start")

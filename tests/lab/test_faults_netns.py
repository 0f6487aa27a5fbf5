"""The network rows of the fault catalogue (shared/FAULTS.md) on a real link: the agent in a network
namespace, the broker on the far side of a veth that the test blackholes, shapes or delays.

The arrangement is in `netns_rig`: broker and collector on the host's loopback as in the other fault
tests, a relay listening in the far namespace, the agent in the gateway namespace.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.lab.netlab import Lab, netns_available
from simulator.virtual.collector import Collector
from tests.support.agent_proc import AgentProcess, buffer_state, wait_until, write_config
from tests.support.certs import Pki
from tests.support.faults import tally
from tests.support.mqtt_broker import Broker, BrokerFactory, TlsSetup
from tests.support.netns_rig import (
    RELAY_PORT,
    RelayProcess,
    gateway_etc,
    in_gateway,
    log_events,
    plain_listener,
    start_in_far,
    threads_and_fds,
)

pytestmark = [pytest.mark.faults, pytest.mark.netns]

SITE = "test-site-01"
PREFIX = "desa/test"
KEEPALIVE_S = 5


@pytest.fixture
def lab() -> Iterator[Lab]:
    available, reason = netns_available()
    if not available:
        pytest.skip(reason)
    with Lab() as built:
        yield built


def _config(
    tmp_path: Path, url: str, *, extra: dict[str, Any] | None = None, **broker: Any
) -> Path:
    broker = {"batch_max_readings": 20, **broker}
    return write_config(tmp_path, broker_url=url, broker=broker, extra=extra)


def _finish(agent: AgentProcess, collector: Collector, fault: str, injected: str) -> None:
    """Let the agent deliver everything, stop it cleanly, record the row, assert nothing lost."""
    last_seq, _ = buffer_state(agent.state_dir)
    collector.wait_for(SITE, range(1, last_seq + 1), 30)
    assert agent.terminate() == 0
    row = tally(fault, injected, agent, collector, SITE)
    print(f"\n{row}")
    assert row.lost == 0, f"{row}\n{agent.log()[-3000:]}"


def _link_events(agent: AgentProcess) -> list[dict[str, Any]]:
    names = ("broker_connected", "broker_unreachable", "broker_disconnected")
    return log_events(agent.log(), *names)


def test_silently_dead_backhaul(tmp_path: Path, broker: Broker, lab: Lab) -> None:
    """Row 1: a blackholed link is noticed within ~2 keepalives, measuring goes on, 0 lost."""
    url = f"mqtt://{lab.far_addr}:{RELAY_PORT}"
    config = _config(tmp_path, url, keepalive_s=KEEPALIVE_S)
    with (
        RelayProcess(lab, broker.port),
        Collector(broker.url(), PREFIX) as collector,
        AgentProcess(config, prefix=in_gateway(lab)) as agent,
    ):
        wait_until(lambda: len(collector.seqs(SITE)) > 20, 20, agent.log())
        before = agent.wait_status("broker_state", lambda s: s == "connected")
        lab.blackhole(True)
        cut = time.time()
        down = agent.wait_status("broker_state", lambda s: s != "connected", 3 * KEEPALIVE_S)
        noticed_s = down["updated_at"] - cut
        time.sleep(max(0.0, cut + 3 * KEEPALIVE_S - time.time()))
        during = agent.status()
        lab.blackhole(False)
        healed = time.time()
        up = agent.wait_status("broker_state", lambda s: s == "connected", 20)
        reconnect_s = up["updated_at"] - healed
        _finish(agent, collector, "1 backhaul silently dead", "blackhole route 15 s (keepalive 5)")
    print(f"noticed after {noticed_s:.1f} s, reconnected {reconnect_s:.1f} s after the heal")
    print([(e["event"], e.get("reason")) for e in _link_events(agent)])
    # paho pings after one keepalive without input and gives up one keepalive after the ping.
    assert KEEPALIVE_S <= noticed_s <= 2 * KEEPALIVE_S + 2
    assert during["last_seq"] - before["last_seq"] >= 20, "rounds stopped while the link was dead"
    assert during["backlog"] > before["backlog"]
    assert reconnect_s < 10


def _flap(lab: Lab, seconds: float) -> None:
    """Blackhole on 2 s / off 3 s, starting with the blackhole already on."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        lab.blackhole(True)
        time.sleep(2)
        lab.blackhole(False)
        time.sleep(3)


def test_link_flapping(tmp_path: Path, broker: Broker, lab: Lab) -> None:
    """Row 2: blackhole 2 s on / 3 s off for 40 s: no crash, no fd/thread leak, backoff kept, 0 lost."""
    low, high = 0.5, 4.0
    url = f"mqtt://{lab.far_addr}:{RELAY_PORT}"
    # A connect timeout shorter than the blackhole, so attempts made in one fail and back off.
    config = _config(
        tmp_path,
        url,
        keepalive_s=KEEPALIVE_S,
        connect_timeout_s=1,
        reconnect_min_s=low,
        reconnect_max_s=high,
    )
    flapping = threading.Thread(target=_flap, args=(lab, 40.0), name="flap")
    with (
        RelayProcess(lab, broker.port) as relay,
        Collector(broker.url(), PREFIX) as collector,
    ):
        lab.blackhole(True)
        with AgentProcess(config, prefix=in_gateway(lab)) as agent:
            # The first flap lasts until an attempt has met it, however long start-up takes.
            agent.wait_status("broker_state", lambda s: s == "unreachable", 20)
            flapping.start()
            try:
                agent.wait_status("broker_state", lambda s: s == "connected", 20)
                time.sleep(1)  # let the first connection settle (birth message, first batches)
                baseline = threads_and_fds(agent.pid)
            finally:
                flapping.join()
            assert agent.running(), agent.log()[-3000:]
            agent.wait_status("broker_state", lambda s: s == "connected", 20)
            after = threads_and_fds(agent.pid)
            _finish(agent, collector, "2 link flapping", "blackhole 2 s on / 3 s off, 40 s")
        accepted = relay.stop()["accepted"]
    events = _link_events(agent)
    attempts = sum(e["event"] != "broker_disconnected" for e in events)
    print(f"threads/fds {baseline} -> {after}; {attempts} attempts, relay accepted {accepted}")
    print([(e["event"], e.get("retry_in_s"), e.get("reason")) for e in events])
    assert after[0] <= baseline[0] and after[1] <= baseline[1]
    assert any(e["event"] == "broker_unreachable" for e in events), "no attempt met the blackhole"
    _assert_backoff(events, low, high)


def _assert_backoff(events: list[dict[str, Any]], low: float, high: float) -> None:
    """Each announced wait lies in the backoff's range for its place in a failure streak, and no
    attempt ended before the wait announced by the one before had passed."""
    streak = 0
    for event, following in zip(events, [*events[1:], None], strict=True):
        if event["event"] == "broker_connected":
            streak = 0
            continue
        streak = 1 if event["event"] == "broker_disconnected" else streak + 1
        base = min(high, low * 2 ** (streak - 1))
        # The log has the wait rounded to 0.1 s.
        assert base / 2 - 0.05 <= event["retry_in_s"] <= base + 0.05, (streak, event)
        if following is not None:
            # Logged by the main loop, which may see one event a round later than the other.
            assert following["at"] - event["at"] >= event["retry_in_s"] - 0.4, (event, following)


def test_vsat_like_link(tmp_path: Path, broker_factory: BrokerFactory, pki: Pki, lab: Lab) -> None:
    """Row 4: 256 kbit, 600 ms RTT: TLS + CONNECT succeed, no spurious drops, acks arrive, 0 lost."""
    server = pki.ca.issue(tmp_path / "lab-pki", "lab-broker", hostnames=(lab.far_addr,))
    tls = TlsSetup(ca_file=pki.ca.cert_file, cert_file=server.cert_file, key_file=server.key_file)
    broker = broker_factory(tls=tls)
    url = f"mqtts://{lab.far_addr}:{RELAY_PORT}"
    # The schema's defaults for keepalive and connect timeout.
    config = _config(
        tmp_path, url, keepalive_s=60, connect_timeout_s=15, ca_file=str(pki.ca.cert_file)
    )
    # A satellite modem queues generously; 200 ms of queue at this rate is about 6 KB.
    lab.shape(256, latency_ms=200)
    collector = Collector(plain_listener(broker), PREFIX).start()
    with AgentProcess(config, prefix=in_gateway(lab)) as agent:
        # A backlog first, as after any outage: the link then runs full for a while.
        agent.wait_status("backlog", lambda n: n >= 600, 20)
        with RelayProcess(lab, broker.port, delay_ms=300):
            asked = time.time()
            up = agent.wait_status("broker_state", lambda s: s == "connected", 20)
            acked_at_connect = up["readings_acked"]
            time.sleep(30)
            status = agent.status()
            _finish(agent, collector, "4 VSAT-like link", "tbf 256 kbit + 300 ms each way, TLS")
    collector.stop()
    events = _link_events(agent)
    connected = [e for e in events if e["event"] == "broker_connected"]
    connect_s = connected[0]["at"] - asked
    agent_lines = [line for line in broker.read_log().splitlines() if "village-agent" in line]
    drops = [line for line in agent_lines if "disconnected:" in line or "exceeded" in line]
    print(f"connected {connect_s:.2f} s after the relay came; acked {status['readings_acked']}")
    print(f"{len(connected)} connections; broker says: {drops}")
    # TLS 1.3 needs one round trip and CONNECT another: proof the delay was really there.
    assert 1.15 <= connect_s < 15
    assert status["readings_acked"] > acked_at_connect
    assert status["last_ack_at"] is not None and time.time() - status["last_ack_at"] < 5
    # No drops of any kind: neither keepalive timeouts nor protocol errors from two threads
    # writing one socket (which this test caught before the MQTT thread became the only writer).
    assert not drops, drops
    assert len(connected) == 1, events


def _dns_responder(lab: Lab, mode: str) -> list[str]:
    argv = [sys.executable, "-m", "simulator.lab.dns_responder", "--host", lab.far_addr]
    return [*argv, "--port", "53", "--mode", mode, "--address", lab.far_addr]


def test_dns_dead(tmp_path: Path, broker: Broker, lab: Lab) -> None:
    """Row 19: a silent resolver stalls neither rounds nor SIGTERM; once DNS answers, 0 lost."""
    interval_s, name = 1.5, "broker.village.test"
    bounded = {"count": 2, "interval_s": 0.01, "timeout_s": 0.4}
    extra = {
        "interval_s": interval_s,
        "latency": {"targets": [name], **bounded},
        "dns": {"timeout_s": 0.4},
    }
    config = _config(tmp_path, f"mqtt://{name}:{RELAY_PORT}", extra=extra)
    # glibc's own defaults (5 s per try, 2 tries): what a gateway meets.
    resolv = f"nameserver {lab.far_addr}\n"
    with (
        gateway_etc(lab, {"resolv.conf": resolv}),
        RelayProcess(lab, broker.port),
        Collector(broker.url(), PREFIX) as collector,
    ):
        silent = start_in_far(lab, _dns_responder(lab, "silent"))
        agent = AgentProcess(config, prefix=in_gateway(lab)).start()
        agent.wait_status("last_round_at", lambda t: t is not None, 20)
        rounds: set[float] = set()
        watched = time.monotonic()
        while time.monotonic() - watched < 12:
            rounds.add(agent.status().get("last_round_at") or 0.0)
            time.sleep(0.05)
        status = agent.status()
        asked = time.monotonic()
        code = agent.terminate(timeout_s=15)
        stopped_s = time.monotonic() - asked
        silent.terminate()
        silent.wait(5)
        start_in_far(lab, _dns_responder(lab, "answer"))
        with AgentProcess(config, prefix=in_gateway(lab)) as agent:
            agent.wait_status("broker_state", lambda s: s == "connected", 30)
            _finish(agent, collector, "19 DNS dead", "resolv.conf -> silent resolver, 12 s")
    times = sorted(rounds - {0.0})
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(f"{len(times)} rounds in 12 s, gaps {min(gaps):.2f}..{max(gaps):.2f} s; stopped in "
          f"{stopped_s:.1f} s; state then {status['broker_state']}: {status['last_error']}")  # fmt: skip
    assert len(times) >= 12 / interval_s - 1
    assert max(gaps) <= interval_s + 0.5
    assert status["broker_state"] != "connected" and status["backlog"] > 0
    assert code == 0 and stopped_s <= 10

"""`village-agent diag`: every check failing and passing against real things the tests set up."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.buffer.store import Buffer
from agent.contract.telemetry import decode_telemetry
from agent.daemon.state import StatusRecord
from agent.diag import TOTAL_BUDGET_S, exit_code, inputs_from_file, run_checks
from agent.diag.base import CheckResult, DiagInputs
from agent.diag.checks import CHECKS
from agent.diag.messages import LANGS, MESSAGES, TITLES, choose_lang, words
from agent.files import STATUS_FILE, replace_json
from agent.reading import Sample, Stamp
from simulator.lab.icmp_responder import DropPlan
from simulator.lab.netlab import FAR_ADDR, Lab, netns_available
from simulator.virtual.clock import Timeline, VirtualClock
from tests.support.agent_proc import AgentProcess, write_config
from tests.support.certs import Pki, make_ca
from tests.support.fake_broker import Behaviour, FakeBroker
from tests.support.mqtt_broker import Broker, BrokerFactory, TlsSetup
from tests.support.netns_rig import start_in_far

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "rahasia-desa"  # noqa: S105 - a test broker's throwaway password


def _config(tmp_path: Path, url: str, **broker: Any) -> Path:
    extra = broker.pop("extra", {})
    return write_config(tmp_path / "site", broker_url=url, broker=broker, extra=extra)


def _password_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "password"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def _run(inputs: DiagInputs, *names: str) -> dict[str, CheckResult]:
    chosen = [c for c in CHECKS if c.name in names]
    return {t.result.name: t.result for t in run_checks(inputs, checks=chosen)}


BROKER_CHECKS = ("broker_tcp", "broker_tls", "broker_mqtt")


def _statuses(found: dict[str, CheckResult]) -> dict[str, tuple[str, str]]:
    return {name: (r.status, r.key) for name, r in found.items()}


# -- broker: TCP and MQTT login --------------------------------------------------------------------
def test_broker_checks_pass_with_the_right_password(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """A running broker that accepts the configured user and password passes TCP and login; over
    mqtt:// (allowed by broker.allow_plaintext) the TLS line fails: the password travels in clear."""
    broker = broker_factory(passwords={"site": PASSWORD})
    config = _site_login(tmp_path, broker)
    found = _statuses(_run(inputs_from_file(config), *BROKER_CHECKS))
    assert found == {
        "broker_tcp": ("pass", "broker_tcp.ok"),
        "broker_tls": ("fail", "broker_tls.plaintext"),
        "broker_mqtt": ("pass", "broker_mqtt.ok"),
    }


@pytest.mark.parametrize("refusal", ["connack", "close"])
def test_login_names_the_mqtt_version_and_why(tmp_path: Path, refusal: str) -> None:
    """A broker without MQTT 5 passes under `auto`, with a line that says 3.1.1 and why; with
    `protocol: "5"` the same broker fails with advice to use auto."""
    with FakeBroker(Behaviour(refuse_v5=refusal)) as fake:  # type: ignore[arg-type]
        auto = _run(inputs_from_file(_config(tmp_path / "auto", fake.url())), *BROKER_CHECKS)
        five = _run(
            inputs_from_file(_config(tmp_path / "five", fake.url(), protocol="5")), *BROKER_CHECKS
        )
    login = auto["broker_mqtt"]
    assert (login.status, login.key) == ("pass", "broker_mqtt.ok_fallback")
    assert "MQTT 3.1.1" in words(login, "en")[0] and "MQTT 5" in words(login, "id")[0]
    expected = "broker_mqtt.old_protocol" if refusal == "connack" else "broker_mqtt.closed"
    assert (five["broker_mqtt"].status, five["broker_mqtt"].key) == ("fail", expected)
    assert "auto" in words(five["broker_mqtt"], "en")[1]


def test_wrong_password_is_reported_as_auth_refused(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """A broker with another password answers CONNACK "bad user name or password": auth refused."""
    broker = broker_factory(passwords={"site": "another-password"})
    config = _site_login(tmp_path, broker)
    for protocol in ("5", "3.1.1"):
        found = _run(inputs_from_file(_with_protocol(config, protocol)), *BROKER_CHECKS)
        assert found["broker_tcp"].status == "pass"
        assert (found["broker_mqtt"].status, found["broker_mqtt"].key) == (
            "fail",
            "broker_mqtt.auth",
        )
        detail, advice = words(found["broker_mqtt"], "id")
        assert "menolak login" in detail
        assert str(tmp_path / "password") in advice  # the password file _site_login wrote


def _with_protocol(config: Path, protocol: str) -> Path:
    text = config.read_text().replace("broker:\n", f"broker:\n  protocol: '{protocol}'\n", 1)
    out = config.with_name(f"agent-{protocol}.yaml")
    out.write_text(text)
    return out


def test_stopped_broker_fails_tcp_and_skips_the_layers_above(
    tmp_path: Path, broker: Broker
) -> None:
    """A stopped broker refuses TCP; TLS and login are reported as not tried, not as more failures."""
    config = _config(tmp_path, broker.url())
    broker.stop()
    found = _statuses(_run(inputs_from_file(config), *BROKER_CHECKS))
    assert found["broker_tcp"] == ("fail", "broker_tcp.refused")
    assert found["broker_mqtt"] == ("warn", "broker.not_tried")


def test_paused_broker_fails_login_within_its_time_limit(tmp_path: Path, broker: Broker) -> None:
    """A hung broker (SIGSTOP) accepts TCP but never answers CONNECT: the login check says so in time."""
    config = _config(tmp_path, broker.url())
    broker.pause()
    try:
        start = time.monotonic()
        results = run_checks(inputs_from_file(config))
        elapsed = time.monotonic() - start
    finally:
        broker.resume()
    found = {t.result.name: t.result for t in results}
    assert found["broker_tcp"].status == "pass"
    assert (found["broker_mqtt"].status, found["broker_mqtt"].key) == (
        "fail",
        "broker_mqtt.no_answer",
    )
    assert elapsed < 30
    assert len(results) == len(CHECKS)


# -- broker: publishing through the ACL -------------------------------------------------------------
DENY_TELEMETRY = "user site\ntopic read desa/test/#\ntopic write desa/test/+/status\n"
ALLOW_TELEMETRY = "user site\ntopic readwrite desa/test/#\n"


def _catch(broker: Broker, where: str) -> tuple[mqtt.Client, list[bytes]]:
    """A subscriber (the broker's anonymous-free ACL aside, as the site user) collecting payloads."""
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="catcher")
    client.username_pw_set("site", PASSWORD)
    client.on_message = lambda _c, _u, message: got.append(message.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(where, qos=1)
    client.loop_start()
    return client, got


def _site_login(tmp_path: Path, broker: Broker) -> Path:
    """The site's config logging in as `site` with PASSWORD over the plain test listener."""
    secret = _password_file(tmp_path, PASSWORD)
    return _config(
        tmp_path, broker.url(), username="site", password_file=str(secret), allow_plaintext=True
    )


def test_publish_check_proves_the_acl_lets_telemetry_through(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """An ACL that allows telemetry: pass, and a contract-valid message with no readings arrives."""
    broker = broker_factory(passwords={"site": PASSWORD}, acl=ALLOW_TELEMETRY)
    config = _site_login(tmp_path, broker)
    catcher, got = _catch(broker, "desa/test/test-site-01/telemetry")
    try:
        time.sleep(0.3)  # the subscription is in place before the check publishes
        found = _run(inputs_from_file(config), *BROKER_CHECKS, "broker_publish")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        catcher.loop_stop()
        catcher.disconnect()
    check = found["broker_publish"]
    assert (check.status, check.key) == ("pass", "broker_publish.ok"), check
    assert len(got) == 1
    batch = decode_telemetry(got[0])
    assert batch.site == "test-site-01" and batch.readings == ()


def test_publish_check_fails_on_an_acl_deny_with_the_reason(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """Login accepted, telemetry denied by the ACL: MQTT 5's PUBACK says "Not authorized": FAIL."""
    broker = broker_factory(passwords={"site": PASSWORD}, acl=DENY_TELEMETRY)
    config = _site_login(tmp_path, broker)
    found = _run(inputs_from_file(config), *BROKER_CHECKS, "broker_publish")
    assert found["broker_mqtt"].status == "pass"
    check = found["broker_publish"]
    assert (check.status, check.key) == ("fail", "broker_publish.denied"), check
    assert check.args["reason"] == "Not authorized"
    assert "desa/test/test-site-01/telemetry" in words(check, "en")[0]
    assert "MENOLAK" in words(check, "id")[0]


def test_publish_check_on_311_warns_and_shows_the_daemons_last_refusal(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """MQTT 3.1.1 cannot carry a deny: WARN saying so, with the last refusal from the status file."""
    broker = broker_factory(passwords={"site": PASSWORD}, acl=DENY_TELEMETRY)
    config = _site_login(tmp_path, broker)
    inputs = inputs_from_file(_with_protocol(config, "3.1.1"))
    assert inputs.config is not None
    refusal = "broker refused a telemetry message: Not authorized"
    inputs.config.state_dir.mkdir(parents=True, exist_ok=True)
    StatusRecord(pid=os.getpid(), last_error=refusal, rejected_total=3).write(
        inputs.config.state_dir / STATUS_FILE
    )
    check = _run(inputs, *BROKER_CHECKS, "broker_publish")["broker_publish"]
    assert (check.status, check.key) == ("warn", "broker_publish.unseen_311"), check
    detail, advice = words(check, "en")
    assert refusal in detail and "3 messages refused" in detail
    assert "protocol: '5'" in advice


def test_publish_check_is_not_tried_when_the_login_failed(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    """A refused login: the publish line says it was not tried instead of failing twice."""
    broker = broker_factory(passwords={"site": "another-password"})
    config = _site_login(tmp_path, broker)
    found = _statuses(_run(inputs_from_file(config), *BROKER_CHECKS, "broker_publish"))
    assert found["broker_publish"] == ("warn", "broker.not_tried")


# -- broker: TLS ------------------------------------------------------------------------------------
def _tls_broker(factory: BrokerFactory, pki: Pki, server_cert: Any) -> Broker:
    return factory(
        tls=TlsSetup(
            ca_file=pki.ca.cert_file,
            cert_file=server_cert.cert_file,
            key_file=server_cert.key_file,
        )
    )


def test_login_names_a_refused_client_certificate(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki
) -> None:
    """A broker demanding a client certificate the gateway lacks: TLS passes (TLS 1.3 sends the
    refusal after the handshake), the login line names the certificate, not "closed"."""
    broker = broker_factory(
        tls=TlsSetup(
            ca_file=pki.ca.cert_file,
            cert_file=pki.server.cert_file,
            key_file=pki.server.key_file,
            require_client_cert=True,
        )
    )
    config = _config(tmp_path, broker.url(), ca_file=str(pki.ca.cert_file))
    found = _run(inputs_from_file(config), *BROKER_CHECKS)
    login = found["broker_mqtt"]
    assert (login.status, login.key) == ("fail", "broker_mqtt.cert_refused")
    assert "broker.cert_file" in words(login, "id")[1]


@pytest.mark.parametrize(
    ("case", "key"),
    [
        ("good", "broker_tls.ok"),
        ("expired", "broker_tls.expired"),
        ("not_yet_valid", "broker_tls.not_yet_valid"),
        ("other_host", "broker_tls.hostname"),
        ("unknown_ca", "broker_tls.unknown_ca"),
    ],
)
def test_tls_check_names_the_certificate_problem(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki, case: str, key: str
) -> None:
    """The TLS check verifies like the agent and says which certificate problem it met."""
    now = datetime.now(UTC)
    certs = tmp_path / "server-certs"
    windows = {
        "expired": {"not_before": now - timedelta(days=60), "not_after": now - timedelta(days=1)},
        "not_yet_valid": {
            "not_before": now + timedelta(days=30),
            "not_after": now + timedelta(days=60),
        },
    }
    if case == "unknown_ca":
        server = make_ca(tmp_path / "other-ca", "Other CA").issue(
            certs, "server", hostnames=("127.0.0.1",)
        )
    else:
        hosts = ("other.example.id",) if case == "other_host" else ("127.0.0.1",)
        server = pki.ca.issue(certs, "server", hostnames=hosts, **windows.get(case, {}))
    broker = _tls_broker(broker_factory, pki, server)
    config = _config(tmp_path, broker.url(), ca_file=str(pki.ca.cert_file))
    found = _run(inputs_from_file(config), *BROKER_CHECKS)
    assert found["broker_tcp"].status == "pass"
    assert found["broker_tls"].key == key
    assert found["broker_tls"].status == ("pass" if case == "good" else "fail")
    assert found["broker_mqtt"].status == ("pass" if case == "good" else "warn")


def test_paused_tls_broker_fails_the_handshake_in_time(
    tmp_path: Path, broker_factory: BrokerFactory, pki: Pki
) -> None:
    """A hung TLS broker: TCP passes, the handshake times out with its own message, login not tried."""
    broker = _tls_broker(broker_factory, pki, pki.server)
    config = _config(tmp_path, broker.url(), ca_file=str(pki.ca.cert_file))
    broker.pause()
    try:
        start = time.monotonic()
        found = _run(inputs_from_file(config), *BROKER_CHECKS)
        elapsed = time.monotonic() - start
    finally:
        broker.resume()
    assert found["broker_tls"].key == "broker_tls.timeout"
    assert found["broker_mqtt"].key == "broker.not_tried"
    assert elapsed < 10


# -- the gateway ------------------------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as state_dir, unmounted after the test."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_nearly_full_state_dir_fails_the_disk_check(tmp_path: Path, small_tmpfs: Path) -> None:
    """state_dir on a nearly full tmpfs fails (below buffer.min_free_mb); freeing space passes."""
    extra = {"state_dir": str(small_tmpfs), "buffer": {"min_free_mb": 0.5}}
    config = _config(tmp_path, "mqtt://127.0.0.1:9", extra=extra)
    inputs = inputs_from_file(config)
    assert _statuses(_run(inputs, "disk"))["disk"] == ("pass", "disk.ok")
    ballast = small_tmpfs / "ballast"
    ballast.write_bytes(b"\0" * (1900 * 1024))
    found = _run(inputs, "disk")["disk"]
    assert (found.status, found.key) == ("fail", "disk.below_floor")
    assert "Disk penuh" in words(found, "id")[0]
    ballast.unlink()
    assert _run(inputs, "disk")["disk"].status == "pass"


def test_clock_check_fails_an_implausible_clock_and_passes_a_synced_one(tmp_path: Path) -> None:
    """A wall clock back in 2021 (no RTC, after a power cut) fails; a synced, plausible one passes."""
    config = _config(tmp_path, "mqtt://127.0.0.1:9")
    clock = VirtualClock(Timeline(time.time()))
    good = DiagInputs(config=inputs_from_file(config).config, config_file=config, clock=clock)
    assert _statuses(_run(good, "clock"))["clock"] == ("pass", "clock.ok")
    past = VirtualClock(Timeline(datetime(2021, 3, 1, tzinfo=UTC).timestamp()))
    wrong = DiagInputs(config=good.config, config_file=config, clock=past)
    assert _statuses(_run(wrong, "clock"))["clock"] == ("fail", "clock.implausible")


def _sys_tree(root: Path, throttled: str) -> Path:
    node = root / "devices/platform/soc/soc:firmware"
    node.mkdir(parents=True)
    (node / "get_throttled").write_text(throttled + "\n")
    return root


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        (None, ("pass", "power.not_pi")),
        ("0", ("pass", "power.ok")),
        ("50000", ("warn", "power.since_boot")),
        ("50005", ("fail", "power.under_voltage_now")),
    ],
)
def test_power_check_reads_the_pi_firmware_flags(
    tmp_path: Path, word: str | None, expected: tuple[str, str]
) -> None:
    """Under-voltage now fails, since boot warns, none passes; no firmware node is "not a Pi"."""
    sys_root = _sys_tree(tmp_path / "sys", word) if word is not None else tmp_path / "empty"
    inputs = DiagInputs(config=None, config_file=tmp_path / "x", sys=sys_root, vcgencmd=None)
    assert _statuses(_run(inputs, "power"))["power"] == expected


def _append(buffer: Buffer, ts_ms: int, *, synced: bool = True) -> None:
    stamp = Stamp(ts_ms=ts_ms, mono_ms=1, boot_id="boot", synced=synced)
    buffer.append(stamp, [Sample(metric="test.value", value=1.0)])


def test_buffer_check_reports_backlog_and_age_read_only(tmp_path: Path) -> None:
    """No buffer warns; an empty one passes; a backlog older than 15 min warns with its age."""
    config_file = _config(tmp_path, "mqtt://127.0.0.1:9")
    inputs = inputs_from_file(config_file)
    assert inputs.config is not None
    assert _run(inputs, "buffer")["buffer"].key == "buffer.missing"
    path = inputs.config.state_dir / "buffer.sqlite"
    buffer = Buffer.open(path, site=inputs.config.site_id, max_readings=1000)
    assert _statuses(_run(inputs, "buffer"))["buffer"] == ("pass", "buffer.empty")
    _append(buffer, round((time.time() - 3600) * 1000))
    found = _run(inputs, "buffer")["buffer"]
    assert (found.status, found.key) == ("warn", "buffer.old")
    assert found.args["count"] == 1
    assert 59 <= float(found.args["age_min"]) <= 61
    # The daemon keeps its connection open and writing while diag reads.
    _append(buffer, round(time.time() * 1000))
    assert _run(inputs, "buffer")["buffer"].args["count"] == 2
    buffer.close()


def test_service_check_needs_a_fresh_status_from_a_live_pid(tmp_path: Path) -> None:
    """No status file fails; a fresh one written by a live process passes; an old one is stale."""
    inputs = inputs_from_file(_config(tmp_path, "mqtt://127.0.0.1:9"))
    assert inputs.config is not None
    assert _statuses(_run(inputs, "service"))["service"] == ("fail", "service.never")
    state = inputs.config.state_dir
    state.mkdir(parents=True, exist_ok=True)
    status = {"pid": os.getpid(), "updated_at": time.time(), "broker_state": "connected"}
    replace_json(state / STATUS_FILE, status)
    assert _statuses(_run(inputs, "service"))["service"] == ("pass", "service.running")
    # The daemon's state word is in the line's language, not the status file's English.
    replace_json(state / STATUS_FILE, {**status, "broker_state": "unreachable"})
    running = _run(inputs, "service")["service"]
    assert "broker: tidak terjangkau" in words(running, "id")[0]
    assert "broker: unreachable" in words(running, "en")[0]
    replace_json(state / STATUS_FILE, {**status, "updated_at": time.time() - 3600})
    assert _statuses(_run(inputs, "service"))["service"] == ("fail", "service.stale")


def test_service_check_passes_for_a_running_agent_and_fails_once_it_stopped(
    tmp_path: Path, broker: Broker
) -> None:
    """The real daemon running: pass with its pid and broker state; after SIGTERM: stopped."""
    config = _config(tmp_path, broker.url())
    inputs = inputs_from_file(config)
    with AgentProcess(config) as agent:
        agent.wait_status("broker_state", lambda state: state == "connected")
        found = _run(inputs, "service")["service"]
        assert (found.status, found.key) == ("pass", "service.running"), agent.log()
        assert found.args["pid"] == str(agent.pid)
        assert found.args["broker"] == "connected"
        assert f"pid {agent.pid}" in words(found, "id")[0]
        assert agent.terminate() == 0
    found = _run(inputs, "service")["service"]
    assert (found.status, found.key) == ("fail", "service.stopped")
    assert found.args["pid"] == str(agent.pid)
    assert "TIDAK berjalan" in words(found, "id")[0]


def test_service_check_fails_after_the_agent_was_killed(tmp_path: Path, broker: Broker) -> None:
    """A crashed daemon (SIGKILL: no clean stop marker, its status file left behind) is stopped."""
    config = _config(tmp_path, broker.url())
    inputs = inputs_from_file(config)
    with AgentProcess(config) as agent:
        agent.wait_status("last_round_at", lambda at: at is not None)
        assert _statuses(_run(inputs, "service"))["service"] == ("pass", "service.running")
        agent.kill()
    found = _run(inputs, "service")["service"]
    assert (found.status, found.key) == ("fail", "service.stopped")
    assert found.args["pid"] == str(agent.pid)


def test_icmp_check_passes_as_root(tmp_path: Path) -> None:
    """With CAP_NET_RAW (root) ping is permitted."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    inputs = DiagInputs(config=None, config_file=tmp_path / "x")
    assert _run(inputs, "icmp")["icmp"].key == "icmp.ok"


# -- namespaces: route, interfaces, DNS, ICMP, the whole run's time limit --------------------------
def _diag_in(
    lab: Lab, config: Path, *prefix: str, lang: str = "en"
) -> tuple[int, dict[str, Any], float]:
    argv = [*prefix, sys.executable, "-m", "agent", "diag", "--json", "--config", str(config)]
    argv += ["--lang", lang]
    start = time.monotonic()
    done = lab.run("gw", argv, check=False, timeout=60)
    elapsed = time.monotonic() - start
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout), elapsed


def _by_name(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["key"]) for c in report["checks"]}


def _checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


needs_netns = pytest.mark.skipif(not netns_available()[0], reason=netns_available()[1])


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Two namespaces joined by a veth pair (gw has no default route until a test adds one)."""
    with Lab() as built:
        yield built


@pytest.fixture
def netns_etc(lab: Lab) -> Iterator[Path]:
    """/etc/netns/<gw namespace>/: files here replace /etc's inside `ip netns exec`."""
    parent = Path("/etc/netns")
    created_parent = not parent.exists()
    directory = parent / lab.names["gw"]
    directory.mkdir(parents=True)
    try:
        yield directory
    finally:
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()
        if created_parent:
            with contextlib.suppress(OSError):  # another test may have put its namespace there
                parent.rmdir()


@pytest.mark.netns
@needs_netns
def test_namespace_without_default_route_fails_the_route_check(tmp_path: Path, lab: Lab) -> None:
    """No default route fails "route" and adding one passes; a downed link fails "interfaces"."""
    extra = {"throughput": {"interfaces": ["veth-gw"]}, "latency": {"targets": [FAR_ADDR]}}
    config = _config(tmp_path, f"mqtt://{FAR_ADDR}:1883", extra=extra)
    code, report, _ = _diag_in(lab, config)
    found = _by_name(report)
    assert found["route"] == ("fail", "route.none")
    assert found["interfaces"] == ("pass", "interfaces.ok")
    assert code == 1
    lab.link_down()
    found = _by_name(_diag_in(lab, config)[1])
    assert found["interfaces"] == ("fail", "interfaces.none_up")
    lab.link_up()
    subprocess.run(
        ["ip", "-n", lab.names["gw"], "route", "add", "default", "via", FAR_ADDR], check=True
    )
    found = _by_name(_diag_in(lab, config)[1])
    assert found["route"] == ("pass", "route.ok")
    assert found["interfaces"] == ("pass", "interfaces.ok")


def _wait_operstate(lab: Lab, iface: str, state: str, timeout_s: float = 5.0) -> None:
    # The kernel's link-watch may take up to a second to report a new carrier.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = lab.run("gw", ["ip", "-j", "link", "show", "dev", iface])
        if json.loads(shown.stdout)[0].get("operstate") == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{iface} never reached operstate {state}")


@pytest.mark.netns
@needs_netns
def test_a_down_hotspot_interface_fails_the_interfaces_check(tmp_path: Path, lab: Lab) -> None:
    """lan.interface down fails even with the WAN up, counted or not; up it passes; absent it fails."""
    gw = lab.names["gw"]
    # The hotspot side: a veth pair inside the gateway namespace, both ends down as created.
    subprocess.run(
        ["ip", "-n", gw, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0-ap"],
        check=True,
    )
    lan = {"lan": {"interface": "lan0"}}
    url = f"mqtt://{FAR_ADDR}:1883"
    every = _config(tmp_path / "every", url, extra=lan)
    wan_only = _config(
        tmp_path / "wan-only", url, extra={**lan, "throughput": {"interfaces": ["veth-gw"]}}
    )
    for config in (every, wan_only):
        check = _checks(_diag_in(lab, config)[1])["interfaces"]
        assert (check["status"], check["key"]) == ("fail", "interfaces.lan_down"), config
        assert "Hotspot lan0" in check["detail"] and "veth-gw" in check["detail"]
        assert "ip link set lan0 up" in check["advice"]
    for iface in ("lan0", "lan0-ap"):
        lab.run("gw", ["ip", "link", "set", iface, "up"])
    _wait_operstate(lab, "lan0", "UP")
    for config in (every, wan_only):
        check = _checks(_diag_in(lab, config)[1])["interfaces"]
        assert (check["status"], check["key"]) == ("pass", "interfaces.ok"), config
        assert "lan0 (LAN)" in check["detail"]
    absent = _config(tmp_path / "absent", url, extra={"lan": {"interface": "wlan9"}})
    check = _checks(_diag_in(lab, absent, lang="id")[1])["interfaces"]
    assert (check["status"], check["key"]) == ("fail", "interfaces.lan_missing")
    assert "hotspot wlan9" in check["detail"]


@pytest.mark.netns
@needs_netns
def test_latency_check_passes_against_a_target_that_answers(tmp_path: Path, lab: Lab) -> None:
    """The ICMP responder answering after 40 ms passes, with that round trip; losing some warns."""
    config = _config(
        tmp_path, f"mqtt://{FAR_ADDR}:1883", extra={"latency": {"targets": [FAR_ADDR]}}
    )
    with lab.start_responder(delay_ms=40) as responder:
        check = _checks(_diag_in(lab, config)[1])["latency"]
        counts = responder.stop()
    assert (check["status"], check["key"]) == ("pass", "latency.ok"), check
    seen = re.search(rf"{re.escape(FAR_ADDR)} (\d+) ms 0%", check["detail"])
    assert seen is not None, check["detail"]
    assert 38 <= float(seen[1]) < 500, check["detail"]  # the responder's 40 ms, not the kernel's 0
    assert counts["answered"] >= 3
    # A seed whose first three requests lose one or two: some answers, some lost.
    seed = next(s for s in range(100) if 0 < sum(_first_drops(0.5, s, 3)) < 3)
    with lab.start_responder(delay_ms=10, loss=0.5, seed=seed):
        check = _checks(_diag_in(lab, config)[1])["latency"]
    assert (check["status"], check["key"]) == ("warn", "latency.lossy"), check


@pytest.mark.netns
@needs_netns
def test_latency_tells_a_dead_backhaul_from_a_dead_modem(tmp_path: Path, lab: Lab) -> None:
    """First hop answers, backhaul targets silent: "backhaul down beyond the first hop"; a default
    route via an address nobody holds: "modem/LAN down"."""
    gw = lab.names["gw"]
    subprocess.run(["ip", "-n", gw, "route", "add", "default", "via", FAR_ADDR], check=True)
    # Behind the far end, which does not forward: like a modem whose satellite link is gone.
    extra = {"latency": {"targets": ["gateway", "10.78.0.9", "10.78.0.10"]}}
    config = _config(tmp_path, f"mqtt://{FAR_ADDR}:1883", extra=extra)
    check = _checks(_diag_in(lab, config)[1])["latency"]
    assert (check["status"], check["key"]) == ("fail", "latency.backhaul_down"), check
    assert f"modem {FAR_ADDR} answers" in check["detail"]
    assert "10.78.0.9 100%" in check["detail"]
    indonesian = _checks(_diag_in(lab, config, lang="id")[1])["latency"]
    assert "Backhaul putus setelah lompatan pertama" in indonesian["detail"]
    # The modem gone: the next hop in the routing table answers no ARP.
    subprocess.run(["ip", "-n", gw, "route", "replace", "default", "via", "10.77.0.3"], check=True)
    check = _checks(_diag_in(lab, config)[1])["latency"]
    assert (check["status"], check["key"]) == ("fail", "latency.first_hop_down"), check
    assert "10.77.0.3" in check["detail"]


def _first_drops(loss: float, seed: int, n: int) -> list[bool]:
    plan = DropPlan(loss, seed)
    return [plan.drop() for _ in range(n)]


@pytest.mark.netns
@needs_netns
def test_dns_check_passes_against_a_resolver_that_answers(
    tmp_path: Path, lab: Lab, netns_etc: Path
) -> None:
    """A real resolver (simulator.lab.dns_responder) answers: pass, and the broker is tried at the
    address it gave; the same resolver answering NXDOMAIN fails with that reason."""
    (netns_etc / "resolv.conf").write_text(f"nameserver {FAR_ADDR}\n")
    # The name is in no hosts file the gateway reads: only the resolver can answer it.
    (netns_etc / "hosts").write_text("127.0.0.1 localhost\n")
    config = _config(tmp_path, "mqtt://collector.desa.test:1883")
    resolver = [sys.executable, "-m", "simulator.lab.dns_responder", "--host", FAR_ADDR, "--port"]
    resolver += ["53", "--address", FAR_ADDR]
    answering = start_in_far(lab, resolver)
    found = _checks(_diag_in(lab, config)[1])
    assert (found["dns"]["status"], found["dns"]["key"]) == ("pass", "dns.ok"), found["dns"]
    assert "collector.desa.test" in found["dns"]["detail"]
    assert FAR_ADDR in found["dns"]["detail"]  # the server it read from resolv.conf
    # Refused, not unresolved: the connection went to the answered address, where nothing listens.
    assert found["broker_tcp"]["key"] == "broker_tcp.refused"
    answering.terminate()
    answering.wait(10)
    start_in_far(lab, [*resolver, "--mode", "nxdomain"])
    found = _checks(_diag_in(lab, config)[1])
    assert (found["dns"]["status"], found["dns"]["key"]) == ("fail", "dns.nxdomain")
    assert found["broker_tcp"]["key"] == "broker_tcp.unresolved"


@pytest.mark.netns
@needs_netns
def test_dead_dns_and_dead_broker_end_within_30_seconds(
    tmp_path: Path, lab: Lab, netns_etc: Path
) -> None:
    """A silent resolver and a blackholed broker: every line printed, the whole run under 30 s."""
    subprocess.run(
        ["ip", "-n", lab.names["gw"], "route", "add", "default", "via", FAR_ADDR], check=True
    )
    (netns_etc / "resolv.conf").write_text(f"nameserver {FAR_ADDR}\n")
    lab.blackhole(True)  # the far end answers nothing: not DNS, not ICMP, not TCP
    extra = {"latency": {"targets": [FAR_ADDR, "collector.desa.test"]}}
    config = _config(tmp_path, "mqtts://collector.desa.test:8883", extra=extra)
    code, report, elapsed = _diag_in(lab, config)
    found = _by_name(report)
    assert elapsed < 30, elapsed
    assert found["dns"] == ("fail", "dns.timeout")
    assert found["broker_tcp"] == ("fail", "broker_tcp.unresolved")
    assert found["latency"] == ("fail", "latency.first_hop_down")
    assert len(found) == len(CHECKS)
    assert code == 1
    # The same names resolve once the resolver answers (here from the namespace's hosts file).
    (netns_etc / "hosts").write_text(f"{FAR_ADDR} collector.desa.test\n")
    found = _by_name(_diag_in(lab, config)[1])
    assert found["dns"] == ("pass", "dns.ok")
    assert found["broker_tcp"] == ("fail", "broker_tcp.timeout")


@pytest.mark.netns
@needs_netns
def test_no_icmp_permission_warns_or_fails_by_method(tmp_path: Path, lab: Lab) -> None:
    """Without CAP_NET_RAW and with ping_group_range "1 0": auto warns (TCP fallback), icmp fails."""
    lab.set_ping_group_range("gw", 1, 0)
    drop = ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"]
    config = _config(tmp_path, "mqtt://127.0.0.1:9")
    assert _by_name(_diag_in(lab, config, *drop)[1])["icmp"] == ("warn", "icmp.tcp_fallback")
    strict = _config(
        tmp_path / "strict", "mqtt://127.0.0.1:9", extra={"latency": {"method": "icmp"}}
    )
    assert _by_name(_diag_in(lab, strict, *drop)[1])["icmp"] == ("fail", "icmp.required")
    assert _by_name(_diag_in(lab, config)[1])["icmp"] == ("pass", "icmp.ok")


# -- output and exit codes --------------------------------------------------------------------------
def test_every_message_exists_in_both_languages_with_the_same_fields() -> None:
    """Each key has an Indonesian and an English text using the same {fields}."""
    fields = re.compile(r"{(\w+)}")
    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGS), key
        id_fields = set(fields.findall("".join(texts["id"])))
        assert id_fields == set(fields.findall("".join(texts["en"]))), key
    assert {c.name for c in CHECKS} <= set(TITLES)


def test_language_comes_from_the_flag_then_the_locale() -> None:
    """--lang wins; else LC_ALL, LC_MESSAGES, LANG; Indonesian when the locale starts with "id"."""
    assert choose_lang("en", {"LANG": "id_ID.UTF-8"}) == "en"
    assert choose_lang(None, {"LANG": "id_ID.UTF-8"}) == "id"
    assert choose_lang(None, {"LANG": "id_ID.UTF-8", "LC_ALL": "C.UTF-8"}) == "en"
    assert choose_lang(None, {}) == "en"


def _cli(
    argv: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_cli_prints_the_checklist_in_indonesian_and_english(tmp_path: Path, broker: Broker) -> None:
    """The text output uses the chosen language and every check's line; JSON has the documented keys."""
    config = _config(tmp_path, broker.url())
    indonesian = _cli(["diag", "--config", str(config)], env={"LANG": "id_ID.UTF-8"})
    english = _cli(["diag", "--config", str(config), "--lang", "en"])
    assert "Broker: login MQTT" in indonesian.stdout and "Hasil:" in indonesian.stdout
    assert "Broker: MQTT login" in english.stdout and "Result:" in english.stdout
    for text, lang in ((indonesian.stdout, "id"), (english.stdout, "en")):
        for spec in CHECKS:
            assert TITLES[spec.name][lang] in text
    report = json.loads(_cli(["diag", "--json", "--config", str(config)]).stdout)
    assert [c["name"] for c in report["checks"]] == [c.name for c in CHECKS]
    for check in report["checks"]:
        assert {"name", "status", "detail", "advice"} <= set(check)
        assert check["status"] in ("pass", "warn", "fail")


def _read_until(fd: int, seen: bytearray, wanted: bytes | None, timeout_s: float) -> bool:
    """Append what the terminal shows to `seen` until `wanted` is in it (True), or until the
    program closed the terminal (True when `wanted` is None), or the time is up (False)."""
    deadline = time.monotonic() + timeout_s
    while wanted is None or wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every copy of the terminal side is closed, the program ended
            chunk = b""
        if not chunk:
            return wanted is None
        seen += chunk
    return True


def test_a_terminal_sees_each_check_in_progress(tmp_path: Path, broker: Broker) -> None:
    """On a pty each check shows "[ ... ] title ..." while it runs, replaced in place by its result."""
    config = _config(tmp_path, broker.url())
    broker.pause()  # the login check waits its whole limit: long enough to look at the terminal
    controller, terminal = pty.openpty()
    try:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "diag", "--lang", "id", "--config", str(config)],
                stdin=terminal,
                stdout=terminal,
                stderr=terminal,
                cwd=REPO,
                env={**os.environ, "TERM": "xterm"},
            )
        finally:
            os.close(terminal)  # the child holds its copy; its exit then ends our reads
        try:
            seen = bytearray()
            waiting = f"[ ... ] {TITLES['broker_mqtt']['id']}".encode()
            assert _read_until(controller, seen, waiting, 20), bytes(seen)
            # The mark is on screen while the check still runs, its result not yet written over it.
            assert proc.poll() is None
            assert b"\r\x1b[2K" not in seen[seen.index(waiting) :]
            assert _read_until(controller, seen, None, 30), bytes(seen)
            assert proc.wait(10) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    finally:
        broker.resume()
        os.close(controller)
    text = bytes(seen).decode()
    for spec in CHECKS:
        title = TITLES[spec.name]["id"]
        # Its progress line, then the terminal line is cleared and the result written over it.
        assert re.search(
            rf"\[ \.\.\. \] {re.escape(title)} +\.\.\.\r\x1b\[2K\[.{{5}}\] {re.escape(title)}", text
        ), title
    assert "[GAGAL] Broker: login MQTT" in text
    assert "Hasil:" in text


def test_exit_codes_zero_one_and_78(tmp_path: Path, broker: Broker) -> None:
    """78 when the config is invalid, 1 when a check failed (here: no daemon), 0 when none failed."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("site_id: NOT VALID\n")
    done = _cli(["diag", "--config", str(bad), "--lang", "en"])
    assert done.returncode == 78
    assert "not valid" in done.stdout
    config = _config(tmp_path, broker.url())
    assert _cli(["diag", "--config", str(config)]).returncode == 1
    inputs = inputs_from_file(config)
    assert inputs.config is not None
    inputs.config.state_dir.mkdir(parents=True, exist_ok=True)
    status = {"pid": os.getpid(), "updated_at": time.time(), "broker_state": "connected"}
    replace_json(inputs.config.state_dir / STATUS_FILE, status)
    Buffer.open(
        inputs.config.state_dir / "buffer.sqlite", site="test-site-01", max_readings=9
    ).close()
    # The gateway-wide checks depend on the machine the tests run on; these depend on the test alone.
    names = {"config", *BROKER_CHECKS, "buffer", "service"}
    results = run_checks(inputs, checks=[c for c in CHECKS if c.name in names])
    assert [t.result.status for t in results] == ["pass"] * len(names)
    assert exit_code(results) == 0
    assert TOTAL_BUDGET_S <= 30

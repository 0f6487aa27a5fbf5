"""Checks of the road to the broker, one layer at a time: TCP, then TLS, then the MQTT login.

Each layer is tried only when the one below passed, so the first failing line is the one to fix. The
login uses `{client_id}-diag`: the agent's own client id would make the broker throw the running daemon
off its connection.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.clock import PLAUSIBLE_AFTER_S
from agent.config.schema import BrokerConfig
from agent.diag.base import Arg, CheckResult, DiagInputs, Earlier, needs_config, result
from agent.diag.system import utc_text
from agent.publish.client import connect_properties, paho_client
from agent.publish.link import tls_refusal
from agent.publish.protocol import Version
from agent.publish.tls import tls_context

# X509_V_ERR_* codes from OpenSSL's x509_vfy.h that a technician can act on.
_NOT_YET_VALID, _EXPIRED = 9, 10
# Host name, e-mail and IP address mismatches: the certificate names another broker.
_HOSTNAME_MISMATCH = {62, 63, 64}
_UNKNOWN_CA = {2, 18, 19, 20, 21}
_AUTH_REFUSED = {134, 135}  # Bad user name or password, Not authorized (3.1.1's 4 and 5 map here)
_UNSUPPORTED_VERSION = 0x84  # CONNACK "Unsupported protocol version" (3.1.1's return code 1)


def _skipped(name: str, earlier: Earlier, below: str) -> CheckResult | None:
    found = earlier.get(below)
    if found is None or found.status == "pass":
        return None
    # Name the step that really failed, not one that was itself skipped.
    first = found.args.get("below", below) if found.key == "broker.not_tried" else below
    return result(name, "warn", "broker.not_tried", below=first)


def _connect(inputs: DiagInputs, broker: BrokerConfig, budget_s: float) -> socket.socket | str:
    """A TCP connection to the broker, or a message key saying why there is none."""
    deadline = time.monotonic() + budget_s
    found = inputs.resolver.lookup(broker.host, timeout_s=budget_s / 2)
    if found.error is not None or not found.addresses:
        return "broker_tcp.unresolved"
    reason = "broker_tcp.timeout"
    for address in found.addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            return socket.create_connection((address, broker.port), timeout=left)
        except ConnectionRefusedError:
            reason = "broker_tcp.refused"
        except TimeoutError:
            reason = "broker_tcp.timeout"
        except OSError:
            reason = "broker_tcp.unreachable"
    return reason


def check_broker_tcp(inputs: DiagInputs, _earlier: Earlier, budget_s: float) -> CheckResult:
    if inputs.config is None:
        return needs_config("broker_tcp")
    broker = inputs.config.broker
    start = time.monotonic()
    sock = _connect(inputs, broker, budget_s - 0.2)
    args: dict[str, Arg] = {"host": broker.host, "port": broker.port}
    if isinstance(sock, str):
        return result("broker_tcp", "fail", sock, **args)
    sock.close()
    ms = round((time.monotonic() - start) * 1000)
    return result("broker_tcp", "pass", "broker_tcp.ok", ms=ms, **args)


def check_broker_tls(inputs: DiagInputs, earlier: Earlier, budget_s: float) -> CheckResult:
    name = "broker_tls"
    if inputs.config is None:
        return needs_config(name)
    broker = inputs.config.broker
    if not broker.tls:
        # Only reachable with broker.allow_plaintext: true; the operator accepted it, diag says it.
        if broker.password_file is not None:
            return result(name, "fail", "broker_tls.plaintext")
        return result(name, "pass", "broker_tls.not_used")
    skipped = _skipped(name, earlier, "broker_tcp")
    if skipped is not None:
        return skipped
    try:
        context = tls_context(broker)
    except (ssl.SSLError, OSError) as err:
        return result(name, "fail", "broker_tls.local_files", error=str(err))
    deadline = time.monotonic() + budget_s - 0.2
    sock = _connect(inputs, broker, budget_s / 2)
    if isinstance(sock, str):
        return result(name, "fail", sock, host=broker.host, port=broker.port)
    now = utc_text(inputs.clock.wall())
    try:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        with context.wrap_socket(sock, server_hostname=broker.host) as tls:
            version = tls.version() or "?"
    except ssl.SSLCertVerificationError as err:
        code = err.verify_code
        if code in (_NOT_YET_VALID, _EXPIRED):
            key = "broker_tls.not_yet_valid" if code == _NOT_YET_VALID else "broker_tls.expired"
            if inputs.clock.wall() < PLAUSIBLE_AFTER_S:
                key = "broker_tls.clock_wrong"
            return result(name, "fail", key, now=now)
        if code in _HOSTNAME_MISMATCH:
            return result(name, "fail", "broker_tls.hostname", host=broker.host)
        if code in _UNKNOWN_CA:
            return result(name, "fail", "broker_tls.unknown_ca", ca=str(broker.ca_file or "system"))
        return result(name, "fail", "broker_tls.verify", error=err.verify_message or str(err))
    except TimeoutError:
        return result(name, "fail", "broker_tls.timeout", host=broker.host)
    except (ssl.SSLError, OSError) as err:
        return result(name, "fail", "broker_tls.failed", error=str(err))
    finally:
        sock.close()
    return result(name, "pass", "broker_tls.ok", version=version, host=broker.host, now=now)


def _login(
    broker: BrokerConfig, client_id: str, budget_s: float, version: Version
) -> tuple[str, str]:
    """Connect with MQTT `version`, wait for CONNACK, disconnect. Return (outcome, reason);
    outcome `old_protocol` when the broker refused the version."""
    client = paho_client(broker, client_id, version)
    client.connect_timeout = max(0.5, budget_s / 2)
    answer: dict[str, ReasonCode] = {}
    answered = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        answer["rc"] = rc
        answered.set()

    client.on_connect = on_connect
    deadline = time.monotonic() + budget_s
    try:
        client.connect(
            broker.host,
            broker.port,
            keepalive=max(10, broker.keepalive_s),
            properties=connect_properties(client),
        )
    except (OSError, ValueError) as err:
        return "unreachable", str(err)
    try:
        while not answered.is_set() and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
        rc = answer.get("rc")
        if rc is None and tls_refusal(client.socket_error):
            # Under TLS 1.3 a refused client certificate arrives as an alert after the handshake,
            # on the first read: the TLS line above passed, this one names it.
            return "cert_refused", str(client.socket_error)
        if rc is None:
            return ("no_answer", "") if time.monotonic() >= deadline else ("closed", "")
        if not rc.is_failure:
            client.disconnect()
            client.loop(timeout=0.1)
            return "ok", str(rc)
        if rc.value == _UNSUPPORTED_VERSION:
            return "old_protocol", str(rc)
        return ("auth" if rc.value in _AUTH_REFUSED else "refused"), str(rc)
    finally:
        sock = client.socket()
        if sock is not None:
            sock.close()


def check_broker_mqtt(inputs: DiagInputs, earlier: Earlier, budget_s: float) -> CheckResult:
    name = "broker_mqtt"
    config = inputs.config
    if config is None:
        return needs_config(name)
    tls = earlier.get("broker_tls")
    # A clear-text password fails the TLS line, yet the operator accepted it
    # (broker.allow_plaintext) and the daemon logs in so: the login is still worth checking.
    plaintext = tls is not None and tls.key == "broker_tls.plaintext"
    skipped = (None if plaintext else _skipped(name, earlier, "broker_tls")) or _skipped(
        name, earlier, "broker_tcp"
    )
    if skipped is not None:
        return skipped
    broker = config.broker
    # As the daemon does under `auto`: MQTT 5 first, 3.1.1 when the broker refuses 5 (a refusal
    # or a close before any answer), so the line names the version the agent really speaks.
    versions: tuple[Version, ...] = (
        ("5", "3.1.1") if broker.protocol == "auto" else (broker.protocol,)
    )
    deadline = time.monotonic() + budget_s - 0.3
    refused_v5 = ""
    for version in versions:
        try:
            outcome, reason = _login(
                broker, f"{config.client_id}-diag", (deadline - time.monotonic()) / 2 + 0.5, version
            )
        except OSError as err:
            where = str(broker.password_file)
            return result(name, "fail", "broker_mqtt.password_file", path=where, error=str(err))
        if version == "5" and len(versions) > 1 and outcome in ("old_protocol", "closed"):
            refused_v5 = reason or "closed"
            continue
        break
    args: dict[str, Arg] = {
        "user": broker.username or "-",
        "reason": reason,
        "password_file": str(broker.password_file or "-"),
        "protocol": version,
        "why": broker.protocol,
        "refused_v5": refused_v5,
    }
    if outcome == "ok":
        key = "broker_mqtt.ok_fallback" if refused_v5 else "broker_mqtt.ok"
        return result(name, "pass", key, **args)
    return result(name, "fail", f"broker_mqtt.{outcome}", **args)

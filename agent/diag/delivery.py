"""Proof that the broker takes the site's telemetry: a login alone says nothing about the ACL.

The check publishes a telemetry message with no readings (valid per the contract, nothing for a
collector to store) on the site's telemetry topic under `{client_id}-diag`, at QoS 1, and waits for
the PUBACK. MQTT 5 carries a reason code in it, so an ACL deny is seen ("Not authorized"). MQTT 3.1.1
has none: mosquitto acknowledges and drops a denied message, so the check can only say that, and
shows the daemon's last refusal from its status file instead.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.config.schema import Config
from agent.contract.telemetry import encode_telemetry
from agent.contract.topics import topic
from agent.daemon.state import StatusRecord
from agent.diag.base import CheckResult, DiagInputs, Earlier, needs_config, result
from agent.files import status_path
from agent.publish.client import paho_client

NAME = "broker_publish"


def _skipped(earlier: Earlier) -> CheckResult | None:
    login = earlier.get("broker_mqtt")
    if login is None or login.status == "pass":
        return None
    return result(NAME, "warn", "broker.not_tried", below="broker_mqtt")


def _publish_once(config: Config, budget_s: float) -> tuple[str, str, bool]:
    """Connect, publish the empty batch at QoS 1, wait for its PUBACK, disconnect.

    Return (outcome, reason, mqtt5): outcome is "ok", "denied", "no_ack", "no_login" or
    "unreachable"."""
    broker = config.broker
    client = paho_client(broker, f"{config.client_id}-diag")
    client.connect_timeout = max(0.5, budget_s / 3)
    mqtt5 = client.protocol == mqtt.MQTTv5
    connected = threading.Event()
    login: dict[str, ReasonCode] = {}
    acks: dict[int, ReasonCode] = {}

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        login["rc"] = rc
        connected.set()

    # paho may call this before publish() returns (aiomqtt's lesson): keep every ack by mid.
    def on_publish(_c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        acks[mid] = rc

    client.on_connect = on_connect
    client.on_publish = on_publish
    deadline = time.monotonic() + budget_s
    try:
        client.connect(broker.host, broker.port, keepalive=max(10, broker.keepalive_s))
    except (OSError, ValueError) as err:
        return "unreachable", str(err), mqtt5
    try:
        while not connected.is_set() and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
        rc = login.get("rc")
        if rc is None or rc.is_failure:
            return "no_login", "" if rc is None else str(rc), mqtt5
        payload = encode_telemetry(
            config.site_id, [], compress=broker.compression, schema=broker.payload_schema
        )
        where = topic(broker.topic_prefix, config.site_id, "telemetry")
        mid = client.publish(where, payload, qos=1).mid
        while mid not in acks and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
        ack = acks.get(mid)
        if ack is None:
            return "no_ack", "", mqtt5
        client.disconnect()
        client.loop(timeout=0.1)
        return ("denied" if ack.is_failure else "ok"), str(ack), mqtt5
    finally:
        sock = client.socket()
        if sock is not None:
            sock.close()


def check_broker_publish(inputs: DiagInputs, earlier: Earlier, budget_s: float) -> CheckResult:
    config = inputs.config
    if config is None:
        return needs_config(NAME)
    skipped = _skipped(earlier)
    if skipped is not None:
        return skipped
    start = time.monotonic()
    try:
        outcome, reason, mqtt5 = _publish_once(config, budget_s - 0.3)
    except OSError as err:  # the password file went away between the two checks
        return result(NAME, "fail", "broker_publish.failed", reason=str(err))
    ms = round((time.monotonic() - start) * 1000)
    where = topic(config.broker.topic_prefix, config.site_id, "telemetry")
    if outcome == "denied":
        return result(NAME, "fail", "broker_publish.denied", topic=where, reason=reason)
    if outcome != "ok":
        return result(NAME, "fail", f"broker_publish.{outcome}", topic=where, reason=reason or "-")
    if mqtt5:
        return result(NAME, "pass", "broker_publish.ok", topic=where, ms=ms)
    status = StatusRecord.read(status_path(config.state_dir, config.status_dir))
    last = status.last_error if status is not None else None
    rejected = status.rejected_total if status is not None else 0
    return result(
        NAME,
        "warn",
        "broker_publish.unseen_311",
        topic=where,
        last_error=last or "-",
        rejected=rejected,
    )

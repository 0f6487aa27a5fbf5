"""The technician's checklist, in the order a fault is best found: from the config outwards to the
broker, then the gateway's own health. Each entry carries the most time its check may take.

The time limits add up to a little more than the run's budget: the runner holds a deadline for
the whole run and cuts the last ones short, so even with DNS and the broker dead the checklist ends
in time and every line is printed.
"""

from __future__ import annotations

from agent.diag.base import CheckResult, CheckSpec, DiagInputs, Earlier
from agent.diag.broker import check_broker_mqtt, check_broker_tcp, check_broker_tls
from agent.diag.confirm import check_confirm
from agent.diag.delivery import check_broker_publish
from agent.diag.dhcp import check_dhcp
from agent.diag.network import check_dns, check_latency
from agent.diag.path import check_path
from agent.diag.state import check_buffer, check_config, check_service
from agent.diag.system import (
    check_clock,
    check_disk,
    check_icmp,
    check_interfaces,
    check_power,
    check_route,
)

__all__ = ["CHECKS", "CheckResult", "CheckSpec", "DiagInputs", "Earlier"]

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(name="config", run=check_config, timeout_s=1.0),
    CheckSpec(name="interfaces", run=check_interfaces, timeout_s=1.0),
    CheckSpec(name="dhcp", run=check_dhcp, timeout_s=5.0),
    CheckSpec(name="route", run=check_route, timeout_s=1.0),
    CheckSpec(name="dns", run=check_dns, timeout_s=3.0),
    CheckSpec(name="latency", run=check_latency, timeout_s=3.0),
    CheckSpec(name="path", run=check_path, timeout_s=4.0),
    CheckSpec(name="broker_tcp", run=check_broker_tcp, timeout_s=4.0),
    CheckSpec(name="broker_tls", run=check_broker_tls, timeout_s=4.0),
    CheckSpec(name="broker_mqtt", run=check_broker_mqtt, timeout_s=5.0),
    CheckSpec(name="broker_publish", run=check_broker_publish, timeout_s=4.0),
    CheckSpec(name="clock", run=check_clock, timeout_s=1.0),
    CheckSpec(name="buffer", run=check_buffer, timeout_s=2.0),
    CheckSpec(name="confirm", run=check_confirm, timeout_s=0.5),
    CheckSpec(name="disk", run=check_disk, timeout_s=1.0),
    CheckSpec(name="power", run=check_power, timeout_s=2.0),
    CheckSpec(name="icmp", run=check_icmp, timeout_s=1.0),
    CheckSpec(name="service", run=check_service, timeout_s=1.0),
)

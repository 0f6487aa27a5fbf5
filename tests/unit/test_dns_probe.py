"""DnsProbe against a fake resolver on loopback (simulator.lab.dns_responder)."""

import time
from pathlib import Path

from agent.probes.dns import DnsProbe, decode_answer, encode_query, resolv_conf_server
from agent.reading import Sample
from simulator.lab.dns_responder import DnsResponder, build_reply


def _by_metric(samples: list[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in samples:
        out.setdefault(s.metric, []).append(s)
    return out


def test_resolution_time_matches_the_resolvers_delay() -> None:
    """The measured time is the resolver's answer delay, within a few milliseconds."""
    with DnsResponder(delay_s=0.080, address="192.0.2.7") as dns:
        probe = DnsProbe(["collector.example.id"], server="127.0.0.1", port=dns.port)
        samples = _by_metric(probe.collect())
    (took,) = samples["dns.resolve_ms"]
    assert 80.0 <= took.value < 90.0
    assert took.tags == {"name": "collector.example.id", "server": "127.0.0.1", "rcode": "noerror"}
    assert [s.value for s in samples["dns.success_bool"]] == [1.0]


def test_dead_resolver_is_bounded_by_the_timeout() -> None:
    """A resolver that never answers costs each name the timeout, then reads as a failure."""
    with DnsResponder(mode="silent") as dns:
        probe = DnsProbe(
            ["a.example", "b.example"], server="127.0.0.1", port=dns.port, timeout_s=0.3
        )
        started = time.monotonic()
        samples = _by_metric(probe.collect())
        elapsed = time.monotonic() - started
        assert dns.queries == 2
    assert 0.6 <= elapsed < 0.9
    assert "dns.resolve_ms" not in samples
    assert [(s.value, s.tags["rcode"]) for s in samples["dns.success_bool"]] == [
        (0.0, "timeout"),
        (0.0, "timeout"),
    ]


def test_nxdomain_is_answered_but_not_a_success() -> None:
    """NXDOMAIN is timed (the resolver worked) but the name did not resolve."""
    with DnsResponder(mode="nxdomain") as dns:
        samples = _by_metric(
            DnsProbe(["nope.example"], server="127.0.0.1", port=dns.port).collect()
        )
    assert samples["dns.resolve_ms"][0].tags["rcode"] == "nxdomain"
    assert samples["dns.success_bool"][0].value == 0.0


def test_nothing_listening_fails_fast() -> None:
    """A closed port (ICMP port unreachable on loopback) fails at once, not after the timeout."""
    with DnsResponder() as dns:
        port = dns.port
    started = time.monotonic()
    samples = _by_metric(DnsProbe(["a.example"], server="127.0.0.1", port=port).collect())
    assert time.monotonic() - started < 0.5
    assert samples["dns.success_bool"][0].tags["rcode"] == "unreachable"


def test_server_defaults_to_resolv_conf(tmp_path: Path) -> None:
    """Without a configured server, the first nameserver in resolv.conf is asked and tagged."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch lan\nnameserver 127.0.0.1\nnameserver 192.0.2.53\n")
    assert resolv_conf_server(conf) == "127.0.0.1"
    assert resolv_conf_server(tmp_path / "missing") is None
    with DnsResponder() as dns:
        probe = DnsProbe(
            ["a.example"], port=dns.port, system_resolver=lambda: resolv_conf_server(conf)
        )
        samples = _by_metric(probe.collect())
    assert samples["dns.success_bool"][0].tags["server"] == "127.0.0.1"
    assert samples["dns.success_bool"][0].value == 1.0


def test_no_resolver_at_all_reads_as_failure() -> None:
    """A gateway with no nameserver configured reports failure for each name, not nothing."""
    samples = DnsProbe(["a.example"], system_resolver=lambda: None).collect()
    assert [(s.metric, s.value, s.tags["rcode"]) for s in samples] == [
        ("dns.success_bool", 0.0, "noserver")
    ]


def test_query_and_reply_round_trip() -> None:
    """The probe's query parses on the fake's side and the fake's reply parses on the probe's."""
    query = encode_query(0x1234, "Desa.Example.ID.")
    ident, rcode, addresses = decode_answer(build_reply(query, "answer", "198.51.100.9"))
    assert (ident, rcode, addresses) == (0x1234, "noerror", ("198.51.100.9",))


def test_unencodable_name_is_a_failure_not_a_crash() -> None:
    """A name with an over-long label is reported as a bad name without touching the network."""
    samples = DnsProbe(["x" * 70 + ".example"], server="127.0.0.1", port=9).collect()
    assert samples[0].tags["rcode"] == "badname"

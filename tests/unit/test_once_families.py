"""`village-agent once --json` prints every measurement family; the speed test only when asked."""

import json
import subprocess
import sys
from pathlib import Path

from simulator.lab.dns_responder import DnsResponder
from simulator.lab.http_sink import serving

FAMILIES = {"throughput", "latency", "uptime", "system", "dns", "clients"}


def _config(tmp_path: Path, dns_port: int, sink_port: int) -> Path:
    base = f"http://127.0.0.1:{sink_port}"
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"""
site_id: test-site
state_dir: {tmp_path / "state"}
interval_s: 60
broker: {{url: "mqtt://127.0.0.1:1", topic_prefix: test}}
latency: {{targets: [127.0.0.1], count: 2, timeout_s: 0.5}}
dns: {{names: [collector.test], server: 127.0.0.1, port: {dns_port}}}
lan: {{interface: lo}}
speedtest:
  enabled: true
  url_download: {base}/download
  url_upload: {base}/upload
  max_seconds: 1
  max_mb: 2
"""
    )
    return path


def _once(config: Path, *extra: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "once", "--json", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_once_covers_every_family_and_the_speedtest_on_request(tmp_path: Path) -> None:
    """Without --speedtest no bytes are spent; with it the speed test's readings follow the round."""
    with DnsResponder() as dns, serving() as sink:
        config = _config(tmp_path, dns.port, sink.port)
        plain = _once(config)
        assert sink.counts.served == 0
        # once stores nothing: no buffer, no status file (and it never connects to a broker).
        assert not (tmp_path / "state" / "buffer.sqlite").exists()
        assert not (tmp_path / "state" / "status.json").exists()
        tested = _once(config, "--speedtest")
        served = sink.counts.served
    families = {str(r["metric"]).split(".")[0] for r in plain}
    assert families >= FAMILIES
    assert "speedtest" not in families
    metrics = {str(r["metric"]) for r in tested}
    assert {"speedtest.download_bps", "speedtest.upload_bps", "speedtest.cost_bytes"} <= metrics
    assert 0 < served <= 2_000_000
    dns_ok = [r for r in plain if r["metric"] == "dns.success_bool"]
    assert dns_ok and all(r["value"] == 1.0 for r in dns_ok)

"""Configuration: every problem at once with its key and the file named, exit 78, no traceback, in
Indonesian or English; the documented sample holds every key of the schema and is valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector.config import Config, load_config
from collector.config.strict import describe_fields
from tests.support.collector_proc import REPO

SAMPLE = REPO / "config" / "collector.yaml"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
        env=env,
    )


BROKEN = """\
broker:
  url: http://broker.example.id
  topic_prefx: desa/v1
  shared_group: "two words"
database:
  url: mysql://db/village
http:
  listen: everywhere
retention_days: 0
"""


@pytest.mark.parametrize("command", [["run"], ["serve"], ["config", "check"]])
def test_a_broken_config_exits_78_naming_the_file_every_key_and_the_fix(
    tmp_path: Path, command: list[str]
) -> None:
    """run, serve and config check list every problem with its key, name the file, say how to
    check again, and exit 78 without a traceback."""
    file = tmp_path / "collector.yaml"
    file.write_text(BROKEN)
    result = cli(*command, "--config", str(file), "--lang", "en")
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert f"Configuration file {file} has 7 problem(s):" in result.stderr
    for key in ("broker.url", "broker.topic_prefx", "broker.topic_prefix", "broker.shared_group",
                "database.url", "http.listen", "retention_days"):  # fmt: skip
        assert f"At '{key}'" in result.stderr
    assert "did you mean 'topic_prefix'?" in result.stderr
    assert f"village-collector config check --config {file}" in result.stderr


def test_problems_read_in_indonesian_when_lang_says_so(tmp_path: Path) -> None:
    """LANG=id_ID picks Indonesian for the sentences around the problems."""
    file = tmp_path / "collector.yaml"
    file.write_text("broker:\n  url: mqtt://127.0.0.1\n  topic_prefix: a\n  password_file: nope\n")
    env = {"LANG": "id_ID.UTF-8", "PATH": "/usr/bin:/bin"}
    result = cli("config", "check", "--config", str(file), env=env)
    assert result.returncode == 78
    assert f"Berkas konfigurasi {file} punya 2 masalah:" in result.stderr
    assert "password_file diisi tetapi username tidak" in result.stderr
    assert "Perbaiki baris-baris itu" in result.stderr


def test_a_missing_file_and_bad_yaml_are_problems_too(tmp_path: Path) -> None:
    """An unreadable file or text that is not YAML is reported like any other problem."""
    missing = cli("config", "check", "--config", str(tmp_path / "none.yaml"), "--lang", "en")
    assert missing.returncode == 78
    assert "cannot read the file" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("broker: [unclosed\n")
    result = cli("config", "check", "--config", str(bad), "--lang", "en")
    assert result.returncode == 78
    assert "not valid YAML" in result.stderr and "Traceback" not in result.stderr


def test_the_sample_is_valid_and_shows_every_key() -> None:
    """config/collector.yaml passes the check and names every key of the schema (some commented)."""
    config = load_config(SAMPLE)
    assert config.database.url == "sqlite:///var/lib/village-collector/collector.sqlite"
    assert config.http.listen == "127.0.0.1:8080"
    text = SAMPLE.read_text()
    for key, _doc in describe_fields(Config):
        leaf = key.rsplit(".", 1)[-1]
        assert f"{leaf}:" in text, f"{key} is not in the sample"
    assert yaml.safe_load(text)["broker"]["client_id"] == "village-collector"
    result = cli("config", "check", "--config", str(SAMPLE))
    assert result.returncode == 0, result.stderr

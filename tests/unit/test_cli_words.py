"""The commands' words: both languages for every key, --version, a closed pipe, plain numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from agent import __version__
from agent.cli.exits import EX_CONFIG, EX_PIPE
from agent.cli.messages import TEXTS
from agent.cli.units import human_bytes, reading_value
from agent.config.messages import MESSAGES as CONFIG_MESSAGES
from agent.diag.messages import HEADINGS, MESSAGES, STATUS_WORDS, TITLES
from agent.lang import LANGS
from tests.support.agent_proc import write_config

REPO = Path(__file__).resolve().parents[2]
_FIELDS = re.compile(r"(?<!{){(\w+)")


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "LANG": "C.UTF-8", **(env or {})},
        timeout=60,
        check=False,
    )


def test_every_key_of_both_catalogues_is_in_id_and_en_with_the_same_fields() -> None:
    """A text missing in one language, or using other {fields} there, fails here."""
    tables: list[dict[str, dict[str, object]]] = [
        {k: dict(v) for k, v in TEXTS.items()},
        {k: dict(v) for k, v in MESSAGES.items()},
        {k: dict(v) for k, v in TITLES.items()},
        {k: dict(v) for k, v in CONFIG_MESSAGES.items()},
        {lang: {"_": "".join(HEADINGS[lang].values())} for lang in LANGS},
    ]
    for table in tables[:4]:
        for key, texts in table.items():
            assert set(texts) == set(LANGS), key
            found = {lang: set(_FIELDS.findall(str(texts[lang]))) for lang in LANGS}
            assert found["id"] == found["en"], key
    assert set(HEADINGS["id"]) == set(HEADINGS["en"])
    assert set(STATUS_WORDS["id"]) == set(STATUS_WORDS["en"])


def test_indonesian_texts_are_translated_not_copied() -> None:
    """An Indonesian text equal to the English one (beyond names, fields and numbers) is
    untranslated; the exceptions are words Indonesian uses as they are."""
    same = [
        key
        for key, texts in [*TEXTS.items(), *CONFIG_MESSAGES.items()]
        if texts["id"] == texts["en"]
        and re.search(r"[a-z]{4,}", re.sub(r"{\w+[^}]*}", "", texts["en"]))
    ]
    # "broker", and the command names that prefix an error from elsewhere.
    assert same == ["buffer.export_failed", "buffer.import_failed", "status.broker"]


def test_version_flag_and_command_print_the_version() -> None:
    """--version and `version` both print the package's version and exit 0."""
    for argv in (("--version",), ("version",)):
        done = _cli(*argv)
        assert (done.returncode, done.stdout.strip()) == (0, f"village-agent {__version__}")


def test_help_follows_the_language() -> None:
    """--help is Indonesian with --lang id or an Indonesian locale, English otherwise."""
    assert "Mengukur link desa" in _cli("--lang", "id", "--help").stdout
    assert (
        "batas waktu menunggu PUBACK" in _cli("once", "--help", env={"LANG": "id_ID.UTF-8"}).stdout
    )
    assert "measure one round" in _cli("--help").stdout


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`status | head` with the reader gone: no BrokenPipeError traceback, exit 141."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    for argv in (["status", "--config", str(config), "--lang", "id"], ["--help"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # nobody reads: the first write fails with EPIPE
        err = proc.stderr.read().decode()
        # argparse swallows a failed write of --help by itself and exits 0.
        assert proc.wait(30) == (0 if argv == ["--help"] else EX_PIPE), err
        assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_once_speedtest_without_a_url_says_so_at_once(tmp_path: Path) -> None:
    """No speedtest.url_download: the reason, exit 78, before any measuring."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    start = time.monotonic()
    done = _cli("once", "--speedtest", "--config", str(config), "--lang", "en")
    assert done.returncode == EX_CONFIG
    assert "speedtest.url_download is not set" in done.stderr
    assert time.monotonic() - start < 9  # the round (>= 1 s baseline wait) never started


def test_status_speaks_indonesian(tmp_path: Path) -> None:
    """`status --lang id`: headline and labels from the catalogue."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    done = _cli("status", "--config", str(config), "--lang", "id")
    assert "village-agent TIDAK berjalan" in done.stdout
    assert "lokasi test-site-01" in done.stdout
    assert "langkah: systemctl status village-agent" in done.stdout


def test_byte_counts_read_as_units() -> None:
    """Bytes in binary units, other values as plain numbers: never 2.52762e+10."""
    assert human_bytes(25276200000) == "23.5 GiB"
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert reading_value("system.disk_total_bytes", 25276200000) == "23.5 GiB"
    assert reading_value("throughput.rx_bps", 25276200000) == "25276200000"
    assert reading_value("latency.rtt_avg_ms", 612.44) == "612.4"


def test_buffer_export_speaks_indonesian(tmp_path: Path) -> None:
    """`buffer export --lang id` with no buffer yet: the reason in Indonesian, exit 66."""
    config = write_config(tmp_path, broker_url="mqtt://127.0.0.1:9")
    done = _cli("buffer", "export", "--out", str(tmp_path / "x.jsonl.gz"), "--config", str(config),
                "--lang", "id")  # fmt: skip
    assert done.returncode == 66
    assert "tidak ada yang diekspor" in done.stderr


def test_config_check_speaks_indonesian_through_and_through(tmp_path: Path) -> None:
    """A broken config told in Indonesian: every line from the catalogue, no English left in it."""
    config = tmp_path / "agent.yaml"
    config.write_text(
        'site_id: "Bad Site"\ninterval_s: -5\nbroker:\n  url: http://x\n  tls_typo: 1\n'
        "buffer:\n  max_readings: yes\n",
        encoding="utf-8",
    )
    done = _cli("config", "check", str(config), "--lang", "id")
    assert done.returncode == EX_CONFIG
    lines = done.stderr.splitlines()
    assert lines[0] == f"Berkas konfigurasi {config} punya 7 masalah:"
    assert "  - Di 'state_dir': kunci wajib tidak ada" in lines
    boolean = "bukan true (nilai ya/tidak)"
    assert (
        f"  - Di 'buffer.max_readings': harus bilangan bulat dalam ±1,000,000,000, {boolean}"
        in lines
    )
    english = ("expected", "missing", "must be", "unknown key", "At '", "got ")
    assert not [line for line in lines if any(word in line for word in english)], lines

"""The config loader: the sample loads, every key is documented, every error is named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from agent.config.convert import describe_fields
from agent.config.load import ConfigError, load_config, parse_config
from agent.config.schema import Config

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "agent.yaml"


def _keys(tree: object, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return set()
    out: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out.add(path)
        out |= _keys(value, path)
    return out


def _uncommented_sample() -> dict[str, object]:
    """The sample with its commented-out optional keys switched on."""
    lines = []
    for line in SAMPLE.read_text().splitlines():
        if line.startswith("  # ") and ":" in line.split("#")[1]:
            lines.append("  " + line[4:])
        else:
            lines.append(line)
    data = yaml.safe_load("\n".join(lines))
    assert isinstance(data, dict)
    return data


def test_the_sample_config_loads() -> None:
    """config/agent.yaml is valid and its documented values are the ones loaded."""
    config = load_config(SAMPLE)
    assert config.site_id == "kukar-tenggarong-01"
    assert config.state_dir == Path("/var/lib/village-agent")
    assert config.interval_s == 60
    assert config.broker.url == "mqtts://collector.example.id:8883"
    assert config.broker.tls and config.broker.port == 8883
    assert config.broker.topic_prefix == "desa/v1/kaltim"
    assert config.latency.targets == ("gateway", "1.1.1.1", "collector.example.id")
    assert (config.latency.count, config.latency.loss_window) == (10, 100)
    assert config.broker.payload_schema == 2


def test_every_schema_key_is_documented_in_the_sample() -> None:
    """Each key of the schema appears in the sample (optional ones as comments)."""
    documented = _keys(_uncommented_sample())
    schema = {path for path, _doc in describe_fields(Config)}
    assert schema - documented == set()
    assert documented - schema == set()


def test_every_problem_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    """Unknown keys, wrong types and bad values are all listed, each with its dotted path."""
    text = (
        "site_id: Kukar 01\nstate_dir: [a]\ninterval_s: true\nsurprise: 1\n"
        "broker:\n  url: mqtt://\n  topic_prefix: +/x\n  protocol: 4\n  inflight_max: 0\n"
        "latency:\n  targets: [1.1.1.1, 7]\n  method: ping\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "agent.yaml")
    problems = caught.value.problems
    for path in (
        "site_id",
        "state_dir",
        "interval_s",
        "surprise",
        "broker.url",
        "broker.topic_prefix",
        "broker.protocol",
        "broker.inflight_max",
        "latency.targets[1]",
        "latency.method",
    ):
        assert any(p.startswith(f"At '{path}'") for p in problems), (path, problems)
    assert str(tmp_path / "agent.yaml") in caught.value.render()


def test_file_problems_are_reported_beside_type_errors(tmp_path: Path) -> None:
    """A wrong type elsewhere does not hide a missing CA file: both come in one report."""
    text = (
        "site_id: a\nstate_dir: s\ninterval_s: fast\n"
        "broker:\n  url: mqtts://h:8883\n  topic_prefix: p\n  ca_file: missing-ca.crt\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "agent.yaml")
    problems = caught.value.problems
    assert any(p.startswith("At 'interval_s'") for p in problems), problems
    assert f"At 'broker.ca_file': no such file {tmp_path / 'missing-ca.crt'}" in problems


def test_repeated_keys_and_infinite_numbers_are_errors(tmp_path: Path) -> None:
    """YAML would keep the last of two equal keys silently, and reads .inf as a number."""
    text = (
        "site_id: a\nstate_dir: s\ninterval_s: .inf\n"
        "broker:\n  url: mqtt://h\n  topic_prefix: p\n  keepalive_s: 30\n  keepalive_s: 60\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "agent.yaml")
    problems = caught.value.problems
    assert "At line 8: key 'keepalive_s' appears twice in one section; keep one of them" in problems
    assert any(p.startswith("At 'interval_s': expected a number") for p in problems), problems
    assert len(problems) == 2, problems


def test_yaml_merge_keys_still_work_and_overrides_are_not_repeats(tmp_path: Path) -> None:
    """`<<:` merges a mapping in; a key set beside it overrides it and is no repeat."""
    text = (
        "site_id: a\nstate_dir: s\ninterval_s: 1\n"
        "broker:\n  <<: {url: 'mqtt://h', topic_prefix: p, keepalive_s: 30}\n  keepalive_s: 60\n"
    )
    config = parse_config(text, tmp_path / "agent.yaml")
    assert (config.broker.url, config.broker.keepalive_s) == ("mqtt://h", 60)


def test_missing_required_keys_are_named(tmp_path: Path) -> None:
    """An empty broker section names both of its required keys."""
    with pytest.raises(ConfigError) as caught:
        parse_config("site_id: a\nstate_dir: s\ninterval_s: 1\nbroker: {}\n", tmp_path / "c.yaml")
    assert "At 'broker.url': required key is missing" in caught.value.problems
    assert "At 'broker.topic_prefix': required key is missing" in caught.value.problems


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    """Broken YAML says where."""
    with pytest.raises(ConfigError) as caught:
        parse_config("site_id: [a\n", tmp_path / "c.yaml")
    assert "line 2" in caught.value.problems[0] or "line 1" in caught.value.problems[0]


def test_protocol_accepts_the_number_five_as_written_in_yaml(tmp_path: Path) -> None:
    """`protocol: 5` (a YAML number) and "3.1.1" are both accepted."""
    base = (
        "site_id: a\nstate_dir: s\ninterval_s: 0.5\nbroker:\n  url: mqtt://h\n  topic_prefix: p\n"
    )
    assert parse_config(base + "  protocol: 5\n", tmp_path / "c").broker.protocol == "5"
    assert parse_config(base + "  protocol: '3.1.1'\n", tmp_path / "c").broker.protocol == "3.1.1"


def test_payload_schema_is_2_unless_a_province_keeps_1(tmp_path: Path) -> None:
    """broker.payload_schema defaults to 2, takes 1, and anything else is named with its choices."""
    base = "site_id: a\nstate_dir: s\ninterval_s: 1\nbroker:\n  url: mqtt://h\n  topic_prefix: p\n"
    file = tmp_path / "agent.yaml"
    assert parse_config(base, file).broker.payload_schema == 2
    assert parse_config(base + "  payload_schema: 1\n", file).broker.payload_schema == 1
    for bad, says in (("3", "expected 1 or 2"), ("0", "expected 1 or 2"), ("'2'", "whole number"),
                      ("true", "whole number"), ("1.0", "whole number")):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            parse_config(base + f"  payload_schema: {bad}\n", file)
        (problem,) = caught.value.problems
        assert problem.startswith("At 'broker.payload_schema': ") and says in problem, problem
        assert str(file) in caught.value.render()


def test_relative_paths_are_taken_from_the_config_directory(tmp_path: Path) -> None:
    """state_dir and TLS files given relative resolve beside the config file."""
    (tmp_path / "ca.crt").write_text("x")
    text = (
        "site_id: a\nstate_dir: state\ninterval_s: 1\n"
        "broker:\n  url: mqtts://h\n  topic_prefix: p\n  ca_file: ca.crt\n"
    )
    config = parse_config(text, tmp_path / "agent.yaml")
    assert config.state_dir == tmp_path / "state"
    assert config.broker.ca_file == tmp_path / "ca.crt"


def test_a_world_readable_password_file_is_refused(tmp_path: Path) -> None:
    """A secret readable by every user is an error that says how to fix it."""
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o644)
    text = (
        "site_id: a\nstate_dir: s\ninterval_s: 1\nbroker:\n  url: mqtts://h\n  topic_prefix: p\n"
        f"  username: u\n  password_file: {secret}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml")
    assert caught.value.problems == [
        f"At 'broker.password_file': {secret} is readable by every user on the gateway; "
        f"run: chmod 0640 {secret}"
    ]
    os.chmod(secret, 0o600)
    config = parse_config(text, tmp_path / "c.yaml")
    assert "s3cret" not in repr(config)


def test_tls_files_with_a_plain_url_are_refused(tmp_path: Path) -> None:
    """Setting a CA but an mqtt:// URL is a mistake worth stopping for."""
    (tmp_path / "ca.crt").write_text("x")
    text = (
        "site_id: a\nstate_dir: s\ninterval_s: 1\n"
        f"broker:\n  url: mqtt://h\n  topic_prefix: p\n  ca_file: {tmp_path / 'ca.crt'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml")
    assert "use mqtts://" in caught.value.problems[0]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not a traceback."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read the file" in caught.value.problems[0]


_BASE = "site_id: a\nstate_dir: s\ninterval_s: 1\nbroker:\n  url: mqtts://h\n  topic_prefix: p\n"


@pytest.mark.parametrize(
    ("line", "path", "words"),
    [
        ('  topic_prefix: "desa\\nv1"\n', "broker.topic_prefix", "control character"),
        ('  topic_prefix: "desa\\ud800"\n', "broker.topic_prefix", "lone surrogate"),
        ("  topic_prefix: $SYS/desa\n", "broker.topic_prefix", "'$'"),
        ("  topic_prefix: desa/$x\n", "broker.topic_prefix", "'$'"),
        ("  topic_prefix: desa//v1\n", "broker.topic_prefix", "empty levels"),
        ("  topic_prefix: desa/#\n", "broker.topic_prefix", "'#'"),
        (f"  topic_prefix: {'x' * 65_500}\n", "broker.topic_prefix", "bytes long"),
        (f"  client_id: {'c' * 65_535}\n", "broker.client_id", "client id"),
        ('  username: "u\\0ser"\n', "broker.username", "control character"),
        (f"  username: {'é' * 33_000}\n", "broker.username", "bytes long"),
        ("  splay_s: 1.0e+12\n", "broker.splay_s", "within"),
        ("  splay_s: 86400\n", "broker.splay_s", "between 0 and 3600"),
        ("  splay_s: -1\n", "broker.splay_s", "between"),
        ("  keepalive_s: 70000\n", "broker.keepalive_s", "between 5 and 65535"),
        (f"  inflight_max: {'9' * 5000}\n", "", "number too long"),
        ("  url: 'mqtt://[::1'\n", "broker.url", "not a URL"),
    ],
)
def test_values_mqtt_cannot_carry_are_refused_with_their_path(
    tmp_path: Path, line: str, path: str, words: str
) -> None:
    """Control characters, lone surrogates, `$`/wildcards in topics, lengths past MQTT's 65,535
    bytes and numbers out of range are config errors naming the key, never a traceback."""
    key = line.split(":", 1)[0].strip()
    text = "\n".join(row for row in _BASE.splitlines() if row.strip().split(":")[0] != key)
    with pytest.raises(ConfigError) as caught:
        parse_config(text + "\n" + line, tmp_path / "c.yaml")
    prefix = f"At '{path}'" if path else ""
    assert any(p.startswith(prefix) and words in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_a_nul_in_state_dir_is_refused(tmp_path: Path) -> None:
    """A NUL in a path is refused at check time instead of crashing `run`."""
    text = _BASE.replace("state_dir: s", 'state_dir: "/var/lib/\\0agent"')
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml")
    assert caught.value.problems[0].startswith("At 'state_dir': ")


def _password(tmp_path: Path) -> Path:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    return secret


def test_a_password_over_plain_mqtt_is_refused(tmp_path: Path) -> None:
    """mqtt:// with a password_file is refused unless broker.allow_plaintext: true accepts it."""
    text = _BASE.replace("mqtts://h", "mqtt://h") + (
        f"  username: u\n  password_file: {_password(tmp_path)}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml")
    assert len(caught.value.problems) == 1
    assert "clear text" in caught.value.problems[0]
    assert caught.value.problems[0].startswith("At 'broker.password_file'")
    config = parse_config(text + "  allow_plaintext: true\n", tmp_path / "c.yaml")
    assert config.broker.allow_plaintext and not config.broker.tls


def test_an_encrypted_client_key_is_refused(tmp_path: Path) -> None:
    """A passphrase-protected key is a config error, not a prompt on the terminal."""
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    key.chmod(0o600)
    text = _BASE + f"  cert_file: {cert}\n  key_file: {key}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml")
    assert caught.value.problems == [
        f"At 'broker.key_file': {key} is encrypted with a passphrase, which a service cannot type;"
        f" decrypt it once: openssl pkey -in {key} -out {key}.plain"
    ]


def test_the_tls_context_refuses_an_encrypted_key_without_prompting(tmp_path: Path) -> None:
    """Building the TLS context with a passphrase-protected key raises EncryptedKey (no prompt)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from agent.publish.tls import EncryptedKey, verified_context

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "site")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder(subject_name=name, issuer_name=name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    cert = tmp_path / "client.crt"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key = tmp_path / "client.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(EncryptedKey):
        verified_context(None, cert, key)

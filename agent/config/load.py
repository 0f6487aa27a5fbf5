"""Reading the agent's configuration file: YAML in, a validated `Config` out, or every problem at
once, each naming its key (`ConfigError`). Secrets are read here, at the moment they are needed."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from agent.config.convert import convert, shown
from agent.config.messages import Said, at, told
from agent.config.pem import PEM_HEAD_BYTES, is_encrypted_pem
from agent.config.schema import BrokerConfig, Config
from agent.lang import Lang
from agent.lowmem import sha256_digest

# A real config is a few kilobytes; this keeps a wrong path (a log, a disk image) from being read whole.
CONFIG_MAX_BYTES = 1_000_000


PASSWORD_MAX_BYTES = 65_535


class ConfigError(Exception):
    """The configuration cannot be used. `problems` lists every one, each naming its key."""

    def __init__(self, file: Path, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(self.render())

    def render(self, lang: Lang = "en") -> str:
        lines = [Said("config.header", file=self.file, n=len(self.problems)).in_lang(lang)]
        lines += [f"  - {told(p, lang)}" for p in self.problems]
        lines.append(Said("config.footer").in_lang(lang))
        return "\n".join(lines)


def _resolve(base: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    return path if path.is_absolute() else base / path


def _secret_problems(path: Path, key: str) -> list[str]:
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return [at(key, Said("file.unreadable", path=path, error=err.strerror))]
    if mode & stat.S_IROTH:
        return [at(key, Said("file.world_readable", path=path))]
    return []


def _password_problems(path: Path) -> list[str]:
    """MQTT carries a password of at most 65,535 bytes; a larger or binary file is a wrong path."""
    try:
        with path.open("rb") as handle:
            data = handle.read(PASSWORD_MAX_BYTES + 1)
    except OSError:
        return []  # `run` reads it as its own user; `_secret_problems` reports a missing file
    if len(data) > PASSWORD_MAX_BYTES or b"\x00" in data:
        return [at("broker.password_file", Said("password.binary", path=path))]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return [at("broker.password_file", Said("password.utf8", path=path))]
    return []


def _key_problems(path: Path) -> list[str]:
    """A daemon must never prompt for a passphrase: refuse an encrypted client key here already."""
    try:
        with path.open("rb") as handle:
            head = handle.read(PEM_HEAD_BYTES)
    except OSError:
        return []
    if is_encrypted_pem(head):
        return [at("broker.key_file", Said("client_key.encrypted", path=path))]
    return []


def _resolve_broker(base: Path, broker: BrokerConfig) -> BrokerConfig:
    return replace(
        broker,
        password_file=_resolve(base, broker.password_file),
        ca_file=_resolve(base, broker.ca_file),
        cert_file=_resolve(base, broker.cert_file),
        key_file=_resolve(base, broker.key_file),
    )


def _broker_problems(broker: BrokerConfig) -> list[str]:
    """What is wrong with the broker section as a whole: missing files, open secrets, mismatches."""
    problems: list[str] = []
    for key, path in (("broker.ca_file", broker.ca_file), ("broker.cert_file", broker.cert_file)):
        if path is not None and not path.is_file():
            problems.append(at(key, Said("file.missing", path=path)))
    for key, path in (
        ("broker.password_file", broker.password_file),
        ("broker.key_file", broker.key_file),
    ):
        if path is not None:
            problems += _secret_problems(path, key)
    if broker.password_file is not None:
        problems += _password_problems(broker.password_file)
    if broker.key_file is not None:
        problems += _key_problems(broker.key_file)
    if not broker.tls and broker.password_file is not None and not broker.allow_plaintext:
        problems.append(at("broker.password_file", Said("password.plaintext")))
    if (broker.cert_file is None) != (broker.key_file is None):
        problems.append(at("broker.cert_file", Said("cert.needs_key")))
    if not broker.tls and any(p is not None for p in (broker.ca_file, broker.cert_file)):
        problems.append(at("broker.url", Said("tls.files_without_tls")))
    if broker.password_file is not None and broker.username is None:
        problems.append(at("broker.username", Said("username.missing")))
    if broker.reconnect_min_s > broker.reconnect_max_s:
        problems.append(at("broker.reconnect_min_s", Said("reconnect.order")))
    return problems


def _file_problems(config: Config) -> list[str]:
    problems = _broker_problems(config.broker)
    if config.latency.loss_window < config.latency.count:
        # A window shorter than one round would say less than the round's own loss_percent.
        short = Said(
            "loss_window.short", count=config.latency.count, value=config.latency.loss_window
        )
        problems.append(at("latency.loss_window", short))
    if config.speedtest.enabled and config.speedtest.url_download is None:
        problems.append(at("speedtest.url_download", Said("speedtest.no_url")))
    return problems


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that notes repeated keys: YAML keeps the last silently, and a technician who
    added `interval_s` twice would not know which one the agent runs with."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges a mapping; SafeLoader flattens it itself
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # SafeLoader itself rejects unhashable keys, with their line
            if key in seen:
                line = key_node.start_mark.line + 1
                self.duplicates.append(Said("key.twice", line=line, key=shown(str(key))))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> tuple[object, list[str]]:
    """The parsed document and its repeated keys. Raise yaml.YAMLError for text that is not YAML."""
    loader = _StrictLoader(text)  # reads the first bytes already: may raise on a bad character
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()


def parse_config(text: str, file: Path) -> Config:
    """Parse and validate config text. Raise ConfigError listing every problem found."""
    try:
        raw, duplicates = _load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = Said("yaml.where", line=mark.line + 1, column=mark.column + 1) if mark else ""
        reason = getattr(err, "problem", None) or str(err)
        invalid = Said("yaml.invalid", where=where, reason=shown(reason, 200))
        raise ConfigError(file, [invalid]) from err
    except ValueError as err:
        # PyYAML converts a number with int() itself, and Python refuses more than 4,300 digits.
        raise ConfigError(file, [Said("yaml.long_number")]) from err
    except RecursionError as err:
        # PyYAML's composer recurses once per nesting level: `[[[[...` thousands deep.
        raise ConfigError(file, [Said("yaml.deep")]) from err
    config, problems = convert(Config, raw)
    problems = duplicates + problems
    base = file.parent
    if config is None:
        # Every problem at once: a wrong type elsewhere must not hide a missing CA file, or the
        # technician fixes one line, restarts, and meets the next error on the next visit.
        if isinstance(raw, dict):
            broker_only, broker_errors = convert(BrokerConfig, raw.get("broker"))
            if broker_only is not None and not broker_errors:
                problems += _broker_problems(_resolve_broker(base, broker_only))
        raise ConfigError(file, problems)
    broker = _resolve_broker(base, config.broker)
    lan = replace(config.lan, leases_file=_resolve(base, config.lan.leases_file))
    transfer = replace(config.transfer, key_file=_resolve(base, config.transfer.key_file) or base)
    config = replace(
        config,
        broker=broker,
        lan=lan,
        transfer=transfer,
        state_dir=_resolve(base, config.state_dir) or base,
        status_dir=_resolve(base, config.status_dir),
    )
    problems += _file_problems(config)
    if problems:
        raise ConfigError(file, problems)
    return config


def config_digest(config: Config) -> str:
    """A short fingerprint of the effective settings, so the office sees which config a site runs."""
    return sha256_digest(repr(config).encode("utf-8")).hex()[:12]


def read_password(broker: BrokerConfig) -> str | None:
    """Read the broker password at the moment it is needed, so it never sits in a config object."""
    if broker.password_file is None:
        return None
    return broker.password_file.read_text(encoding="utf-8").strip("\r\n")


def load_config(file: Path) -> Config:
    """Read and validate the config file. Raise ConfigError naming the file and every problem."""
    try:
        with file.open("rb") as handle:
            data = handle.read(CONFIG_MAX_BYTES + 1)
    except OSError as err:
        raise ConfigError(file, [Said("file.cannot_read", error=err.strerror)]) from err
    if len(data) > CONFIG_MAX_BYTES:
        raise ConfigError(file, [Said("file.too_big", max=CONFIG_MAX_BYTES)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(file, [Said("file.not_utf8")]) from err
    return parse_config(text, file)

"""Reading the collector's YAML: every problem at once, each with its key, the file named.

The rules are the agent's (`config/strict.py`): unknown keys and wrong types are errors, repeated keys
too. What a person reads is in their language (`collector.messages`).
"""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from agent.config.messages import Said, told
from collector.config.schema import BrokerConfig, Config
from collector.config.strict import convert
from collector.messages import Lang, text


class ConfigError(Exception):
    """The configuration cannot be used. `problems` lists every one, each naming its key."""

    def __init__(self, file: Path, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(self.render("en"))

    def render(self, lang: Lang) -> str:
        lines = [text("config.header", lang, file=self.file, count=len(self.problems))]
        lines += [f"  - {told(p, lang)}" for p in self.problems]
        lines.append(text("config.fix", lang, file=self.file))
        return "\n".join(lines)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that notes repeated keys, which YAML would otherwise resolve silently."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool):
                if key in seen:
                    self.duplicates.append((key_node.start_mark.line + 1, str(key)))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _resolve(base: Path, path: Path | None) -> Path | None:
    if path is None or path.is_absolute():
        return path
    return base / path


def _database_url(base: Path, url: str) -> str:
    """`sqlite:relative/file` is taken from the config file's directory, like every other path."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and not parts.path.startswith("/"):
        return f"sqlite://{(base / parts.path).resolve()}"
    return url


def _file_problems(broker: BrokerConfig, lang: Lang) -> list[str]:
    problems: list[str] = []
    if broker.ca_file is not None and not broker.ca_file.is_file():
        problems.append(
            text("config.missing_file", lang, key="broker.ca_file", path=broker.ca_file)
        )
    if broker.password_file is not None:
        key = "broker.password_file"
        try:
            mode = broker.password_file.stat().st_mode
        except OSError:
            problems.append(text("config.missing_file", lang, key=key, path=broker.password_file))
        else:
            if mode & stat.S_IROTH:
                path = broker.password_file
                problems.append(text("config.open_secret", lang, key=key, path=path))
        if broker.username is None:
            problems.append(text("config.password_without_user", lang))
    if broker.ca_file is not None and not broker.tls:
        problems.append(text("config.tls_file_plain_url", lang))
    return problems


def parse_config(source: str, file: Path, lang: Lang = "en") -> Config:
    """Parse and validate config text. Raise ConfigError listing every problem found."""
    try:
        loader = _StrictLoader(source)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = Said("yaml.where", line=mark.line + 1, column=mark.column + 1) if mark else ""
        reason = getattr(err, "problem", None) or str(err)
        raise ConfigError(
            file, [text("config.not_yaml", lang, where=told(where, lang), reason=reason)]
        ) from err
    problems = [text("config.duplicate", lang, line=n, key=k) for n, k in loader.duplicates]
    config, convert_problems = convert(Config, raw)
    problems += convert_problems
    base = file.parent
    if config is not None:
        broker = replace(
            config.broker,
            password_file=_resolve(base, config.broker.password_file),
            ca_file=_resolve(base, config.broker.ca_file),
        )
        database = replace(config.database, url=_database_url(base, config.database.url))
        config = replace(config, broker=broker, database=database)
        problems += _file_problems(broker, lang)
    if problems or config is None:
        raise ConfigError(file, problems)
    return config


def load_config(file: Path, lang: Lang = "en") -> Config:
    """Read and validate the config file. Raise ConfigError naming the file and every problem."""
    try:
        source = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(file, [text("config.unreadable", lang, error=err.strerror)]) from err
    except UnicodeDecodeError as err:
        raise ConfigError(file, [text("config.not_utf8", lang)]) from err
    return parse_config(source, file, lang)


def read_password(broker: BrokerConfig) -> str | None:
    """The broker password, read when it is needed so it never sits in a config object."""
    if broker.password_file is None:
        return None
    return broker.password_file.read_text(encoding="utf-8").strip("\r\n")

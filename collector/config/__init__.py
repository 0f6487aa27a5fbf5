"""The collector's configuration: schema (dataclasses), strict loading, every problem at once."""

from collector.config.load import ConfigError, load_config, parse_config, read_password
from collector.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config", "parse_config", "read_password"]

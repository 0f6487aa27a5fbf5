"""The agent's strict YAML-to-dataclass converter, reached through this one import.

One converter for both programs: unknown keys are errors, every problem is reported with its path.
When the agent's config modules move, this file follows them.
"""

from __future__ import annotations

from agent.config.convert import convert, describe_fields, meta

__all__ = ["convert", "describe_fields", "meta"]

"""The only module that imports the agent's contract code: everything else imports it from here.

The collector decodes exactly what the agents encode, with the agent's own decoder (both telemetry
schemas, the preset dictionary, every check with its place in the message). When the agent's modules
move, this file is the one to follow them.
"""

from __future__ import annotations

from agent.contract.telemetry import Batch, PayloadError, decode_telemetry
from agent.reading import Reading

__all__ = ["Batch", "PayloadError", "Reading", "decode_telemetry"]

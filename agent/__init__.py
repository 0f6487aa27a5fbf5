"""village-agent: the edge agent of village internet access points."""

from agent import deferred as _deferred

__version__ = "0.1.0"

# Before anything imports structlog or paho-mqtt: see agent/deferred.py.
_deferred.defer()

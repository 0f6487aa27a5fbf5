"""village-agent: the edge agent of village internet access points."""

import sys

from agent import deferred as _deferred

__version__ = "0.1.0"

# Only the daemon, `village-agent run` or `python -m agent run`, and before anything imports
# structlog or paho-mqtt: see agent/deferred.py. The technician's commands, the simulator and the
# tests import as usual.
if sys.argv[1:2] == ["run"]:
    _deferred.defer()

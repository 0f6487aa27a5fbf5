"""`python -m agent` is `village-agent`."""

import sys

from agent.cli import main

sys.exit(main())

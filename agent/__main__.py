"""`python -m agent` is `village-agent`."""

import sys

from agent.cli.main import main

sys.exit(main())

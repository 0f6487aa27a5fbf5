"""`python -m collector ...` is `village-collector ...`."""

from collector.cli import main

raise SystemExit(main())

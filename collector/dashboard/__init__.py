"""What the dashboard and the alerts know about a site: its state (`state.py`, the only place the
online/offline/no_data rule lives), its human names (`registry.py`) and its figures (`overview.py`)."""

"""Alerts on transitions: a site offline / back online, its backhaul down / up, under-voltage on /
off. Each fires once per transition, to a webhook and the log (`loop.py`); the last state per site
and kind is kept in `alert_state`, so a restarted collector does not fire again."""

"""Readings out to other tools: JSON lines and InfluxDB line protocol (the `decode` command, for
Telegraf and Node-RED), and the Prometheus text format (`/metrics`)."""

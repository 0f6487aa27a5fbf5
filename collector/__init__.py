"""The provincial collector: MQTT in, the agent's contract decoded, readings stored exactly once.

The folders follow the data: `ingest/` (subscriber, batches acknowledged after their commit) ->
`store/` (schema, SQLite or PostgreSQL) -> `bridge/` and `web/` (JSON lines, InfluxDB line protocol,
Prometheus /metrics). `config/` and `cli.py` start it all; `decode.py` is the one door to the agent's
contract code.
"""

__version__ = "0.1.0"

"""From the broker to the store: the subscriber (persistent session, manual acknowledgements), the
parser (topic and payload to records) and the batching loop (commit, then acknowledge)."""

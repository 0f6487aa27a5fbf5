"""The collector's confirmation to each site of what it stored (`{prefix}/{site}/ack`)."""

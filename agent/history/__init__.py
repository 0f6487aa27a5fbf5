"""The gateway's own history for the technician: hourly summaries, outages and power cuts of the
last 14 days, kept beside the buffer so that `village-agent status --history` answers on site
with no internet, days after the fault."""

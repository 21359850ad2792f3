"""Booking profiles shipped with fpagent, as TOML data (read by fpagent.records.profile)."""

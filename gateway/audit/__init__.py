"""The audit log of every call through the gateway: recorded off the hot path,
stored in the gateway's database, read by ``tally audit`` and ``GET /audit``."""

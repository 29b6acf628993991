"""Policies the gateway applies at the edge, before a call reaches a service: rate
limits per SLA tier, body and header size limits, CORS, API version status."""

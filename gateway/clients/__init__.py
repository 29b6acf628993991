"""The gateway's OAuth client registry."""

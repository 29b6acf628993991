"""The `tally` command: start, serve, seed and operate the platform."""

"""Tally platform kernel: what every service shares (never a service's business rules)."""

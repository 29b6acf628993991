"""Events: CloudEvents envelope, canonical catalog, bus engines, outbox and inbox."""

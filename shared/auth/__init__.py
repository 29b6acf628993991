"""Access-token verification (every service) and service-to-service tokens."""

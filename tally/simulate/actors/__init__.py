"""The parties of the day: each acts only through the gateway with its own client."""

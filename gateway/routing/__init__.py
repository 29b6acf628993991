"""Forwarding of ``/{api}/v1/...`` and ``/graphql`` to the services: a pure ASGI layer
in front of the gateway's Litestar app, over one shared aiohttp session."""

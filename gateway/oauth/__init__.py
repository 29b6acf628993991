"""The gateway's OAuth 2 authorization server (Authlib) and its signing keys."""

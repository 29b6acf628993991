"""The gateway's signing keys: ES256 (EC P-256), generated on first start and kept in
``<data_dir>/keys/signing-keys.json`` (mode 0600).

The file holds a list of keys and the ``kid`` of the active one, so a rotation can
later add a key, switch ``active_kid`` and keep the old public key in the JWKS until
the tokens it signed have expired.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet

log = logging.getLogger("tally.gateway.keys")

ALGORITHM = "ES256"


def _new_key() -> ECKey:
    return ECKey.generate_key(
        "P-256", parameters={"alg": ALGORITHM, "use": "sig"}, private=True, auto_kid=True
    )


def _write_new(path: Path, content: str) -> bool:
    """Creates ``path`` atomically with mode 0600; False when it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails if another process created the file first
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: list[ECKey] = []
        self._active: ECKey | None = None
        self.load()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KeyStore:
        return cls(data_dir / "keys" / "signing-keys.json")

    def load(self) -> None:
        if not self.path.exists():
            key = _new_key()
            document = {"active_kid": key.kid, "keys": [key.as_dict(private=True)]}
            if _write_new(self.path, json.dumps(document, indent=2)):
                log.info("generated signing key %s in %s", key.kid, self.path)
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); set to 0600", self.path, mode)
            os.chmod(self.path, 0o600)
        document = json.loads(self.path.read_text())
        keys: list[ECKey] = []
        for data in document["keys"]:
            key = ECKey.import_key(data)
            if not key.is_private:
                raise ValueError(f"{self.path}: key {key.kid} has no private part")
            keys.append(key)
        active_kid = document.get("active_kid") or keys[0].kid
        active = next((key for key in keys if key.kid == active_kid), None)
        if active is None:
            raise ValueError(f"{self.path}: active_kid {active_kid} is not among the keys")
        self._keys, self._active = keys, active

    @property
    def active(self) -> ECKey:
        assert self._active is not None
        return self._active

    def signing_key_set(self) -> KeySet:
        """Only the active key: joserfc picks it and writes its ``kid`` into the header."""
        return KeySet([self.active])

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self._keys]}

    def public_key_set(self) -> KeySet:
        return KeySet([ECKey.import_key(key.as_dict(private=False)) for key in self._keys])


class LocalKeySource:
    """The gateway verifies tokens against its own key set, without HTTP to itself."""

    def __init__(self, store: KeyStore, min_refresh_seconds: float = 10) -> None:
        self.store = store
        self.min_refresh_seconds = min_refresh_seconds
        self._keys = store.public_key_set()
        self._loaded_at = time.monotonic()

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        # An unknown kid: another replica may have rotated the file. Re-read it, but
        # not more often than every few seconds (a forged kid must not cost a read).
        if refresh and time.monotonic() - self._loaded_at >= self.min_refresh_seconds:
            self._loaded_at = time.monotonic()
            self.store.load()
            self._keys = self.store.public_key_set()
        return self._keys

"""Secrets: JWT signing keys (JWKS), PII encryption keys (Fernet) and the lookup-hash key.

In dev, missing secrets are generated once and kept in ``<var_dir>/keys.json`` (mode 0600) so tokens
and encrypted rows survive restarts. In prod they must come from the environment.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from joserfc.jwk import KeySet, RSAKey

from domain.settings import Settings, get_settings


def new_signing_key() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
    return key.as_dict(private=True)


@dataclass(frozen=True)
class Keys:
    signing: KeySet
    signing_kid: str
    public_jwks: dict[str, Any]
    fernet: MultiFernet
    lookup_key: bytes

    def encrypt(self, value: str) -> str:
        return self.fernet.encrypt(value.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self.fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:  # a key was rotated out too early, or the row was tampered with
            raise ValueError(
                "encrypted value cannot be decrypted with the configured keys"
            ) from exc

    def lookup_hash(self, kind: str, normalized: str) -> str:
        digest = hmac.new(self.lookup_key, f"{kind}:{normalized}".encode(), hashlib.sha256)
        return digest.hexdigest()


def _dev_store(settings: Settings) -> dict[str, Any]:
    path = Path(settings.var_dir) / "keys.json"
    if path.exists():
        stored: dict[str, Any] = json.loads(path.read_text())
        return stored
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "signing_keys": {"keys": [new_signing_key()]},
        "encryption_keys": Fernet.generate_key().decode(),
        "lookup_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
    return data


def rotate_dev_signing_key(settings: Settings) -> str:
    """Add a new signing key in front (it signs from now on); older keys stay published."""
    path = Path(settings.var_dir) / "keys.json"
    data = _dev_store(settings)
    key = new_signing_key()
    data["signing_keys"]["keys"].insert(0, key)
    path.write_text(json.dumps(data))
    load_keys.cache_clear()
    return str(key["kid"])


def build_keys(settings: Settings) -> Keys:
    settings.require_secrets()
    stored = {} if settings.is_prod else _dev_store(settings)
    jwks = json.loads(settings.signing_keys) if settings.signing_keys else stored["signing_keys"]
    keyset = KeySet.import_key_set(jwks)
    if not keyset.keys:
        raise ValueError("no signing keys configured")
    first = keyset.keys[0]
    public = {"keys": [k.as_dict(private=False) for k in keyset.keys]}
    enc = settings.encryption_keys or stored["encryption_keys"]
    fernet = MultiFernet([Fernet(k.strip()) for k in enc.split(",") if k.strip()])
    lookup = settings.lookup_key or stored["lookup_key"]
    return Keys(
        signing=keyset,
        signing_kid=str(first.kid),
        public_jwks=public,
        fernet=fernet,
        lookup_key=lookup.encode(),
    )


@functools.cache
def load_keys() -> Keys:
    return build_keys(get_settings())

"""The one signer: the only code that loads Ed25519 keys, signs licenses and builds JWKS.

Keys live in files (CONTRACT §1), never in the database:
- the signing key is `PRIVATE_KEY_PATH` (default `keys/<KEY_ID>.private.pem`), optionally
  encrypted with `PRIVATE_KEY_PASSPHRASE`; its `kid` is `KEY_ID`;
- every `keys/<kid>.public.pem` is a verification key, so tokens signed before a rotation,
  or by an older server whose public key was imported, keep verifying.

Keys are read once per process (`keyring()`); `reset()` drops the cache after a rotation or
in tests. Private key material is never logged, serialised or returned by this module.
"""

from __future__ import annotations

import base64
import functools
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from licensing import verification
from licensing.verification import ALGORITHM, Verifier

PUBLIC_SUFFIX = ".public.pem"
PRIVATE_SUFFIX = ".private.pem"


class SigningKeyUnavailable(Exception):
    """The signing key is missing, unreadable, not Ed25519, or too widely readable.
    The message names the problem and the path, never key material."""


@dataclass
class KeyRing:
    signing_kid: str
    signing_key: Ed25519PrivateKey | None
    signing_error: str | None
    public_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    def verifier(self, **kwargs: Any) -> Verifier:
        return Verifier(
            self.public_keys,
            settings.LICENSE_ISSUER,
            leeway=settings.VALIDATION_LEEWAY_SECONDS,
            **kwargs,
        )


def _check_private_key_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyUnavailable(
            f"private key {path} is readable by group or others (mode {mode:o}); "
            f"run: chmod 600 {path}"
        )


def load_private_key(path: Path, passphrase: str | None) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a PEM file; raise SigningKeyUnavailable on any problem."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyUnavailable(
            f"signing key not found at {path}; run: python manage.py generate_keys"
        ) from None
    except OSError as exc:
        raise SigningKeyUnavailable(
            f"signing key at {path} is unreadable ({exc.strerror})"
        ) from None
    if settings.IS_PRODUCTION:
        _check_private_key_mode(path)
    try:
        key = serialization.load_pem_private_key(
            data, password=passphrase.encode() if passphrase else None
        )
    except (ValueError, TypeError):
        # Wrong or missing passphrase, or not a PEM private key. The library's message could
        # echo file content, so it is replaced by ours.
        raise SigningKeyUnavailable(
            f"signing key at {path} could not be loaded (wrong PRIVATE_KEY_PASSPHRASE or not a PEM key)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyUnavailable(f"signing key at {path} is not an Ed25519 key")
    return key


def load_public_keys(keys_dir: Path) -> dict[str, Ed25519PublicKey]:
    """Every `<kid>.public.pem` in the folder that holds an Ed25519 key; others are skipped."""
    keys: dict[str, Ed25519PublicKey] = {}
    if not keys_dir.is_dir():
        return keys
    for path in sorted(keys_dir.glob(f"*{PUBLIC_SUFFIX}")):
        kid = path.name[: -len(PUBLIC_SUFFIX)]
        try:
            keys[kid] = verification.public_key_from_pem(path.read_bytes())
        except (OSError, ValueError):
            continue
    return keys


@functools.cache
def keyring() -> KeyRing:
    """The keys of this process, loaded on first use."""
    public_keys = load_public_keys(Path(settings.KEYS_DIR))
    try:
        signing_key = load_private_key(
            Path(settings.PRIVATE_KEY_PATH), settings.PRIVATE_KEY_PASSPHRASE
        )
        error = None
        # The signing key always verifies what it signs, even without its .public.pem.
        public_keys.setdefault(settings.KEY_ID, signing_key.public_key())
    except SigningKeyUnavailable as exc:
        signing_key, error = None, str(exc)
    return KeyRing(settings.KEY_ID, signing_key, error, public_keys)


def reset() -> None:
    """Forget the loaded keys (after generating or rotating keys, and in tests)."""
    keyring.cache_clear()


def signing_key_status() -> str | None:
    """None when a signing key is usable, else why not."""
    return keyring().signing_error


def sign(claims: dict[str, Any]) -> tuple[str, str]:
    """Sign `claims` as a compact JWS with the current key; return (token, kid).

    Header `{"alg": "EdDSA", "typ": "JWT", "kid": <KEY_ID>}`. Callers own the claims: a
    perpetual license simply has no `exp` key. Raises SigningKeyUnavailable.
    """
    ring = keyring()
    if ring.signing_key is None:
        raise SigningKeyUnavailable(ring.signing_error)
    token = jwt.encode(
        claims,
        ring.signing_key,
        algorithm=ALGORITHM,
        headers={"kid": ring.signing_kid, "typ": "JWT"},
    )
    return token, ring.signing_kid


def verifier(**kwargs: Any) -> Verifier:
    """A verifier holding every public key of the keys folder, the issuer and the leeway."""
    return keyring().verifier(**kwargs)


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_jwk(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    """An OKP/Ed25519 JWK (RFC 8037) for one public key; never a private part."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": ALGORITHM}


def jwks() -> dict[str, list[dict[str, str]]]:
    return {"keys": [public_jwk(kid, key) for kid, key in sorted(keyring().public_keys.items())]}


def write_keypair(keys_dir: Path, kid: str, *, passphrase: str | None = None) -> tuple[Path, Path]:
    """Create `<kid>.private.pem` (mode 0600 from the first byte) and `<kid>.public.pem`.

    Refuses to overwrite an existing key (FileExistsError). Returns (private, public) paths.
    """
    keys_dir.mkdir(parents=True, exist_ok=True)
    private_path = keys_dir / f"{kid}{PRIVATE_SUFFIX}"
    public_path = keys_dir / f"{kid}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(str(path))
    key = Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # O_EXCL + mode 0600: the file never exists with wider permissions, even for an instant.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    os.chmod(private_path, 0o600)  # in case a restrictive umask was not in force
    public_path.write_text(public_key_pem(key.public_key()))
    reset()
    return private_path, public_path

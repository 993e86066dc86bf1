"""The one signer: the only code that loads Ed25519 keys, signs licenses, leases and
revocation lists, and builds JWKS.

Keys live in files (CONTRACT §1), never in the database. The state of a key id (`kid`) is
the set of its files in KEYS_DIR:
- `<kid>.private.pem`: it can sign (the signing key is `PRIVATE_KEY_PATH`, default
  `keys/<KEY_ID>.private.pem`, optionally encrypted with `PRIVATE_KEY_PASSPHRASE`);
- `<kid>.public.pem`: it verifies, so tokens signed before a rotation, or by an older server
  whose public key was imported, keep verifying and JWKS publishes it;
- `<kid>.retired`: it may no longer sign (`sign()` refuses, `signing_key_status()` says so)
  but still verifies;
- `<kid>.compromised.pem`: its public key, moved aside. A compromised key neither signs nor
  verifies (its tokens answer UNKNOWN_KEY) and JWKS drops it; its private key is renamed
  `<kid>.private.pem.compromised`. A key id is never reused once it has any of these files.

`keyring()` caches the keys per process and re-reads them when the keys folder or the
private key file changes (one `stat` of each per call, far cheaper than a re-read:
docs/performance.md), so a key retired or imported by a command reaches every running worker
without a restart. Replace key files by renaming (`mv`), not by rewriting them in place, or restart.
`reset()` forces a re-read.
Private key material is never logged, serialised or returned by this module.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from licensing import verification
from licensing.verification import ALGORITHM, LEASE_TYP, REVOCATION_LIST_TYP, Verifier

PUBLIC_SUFFIX = ".public.pem"
PRIVATE_SUFFIX = ".private.pem"
RETIRED_SUFFIX = ".retired"
COMPROMISED_SUFFIX = ".compromised.pem"
COMPROMISED_PRIVATE_SUFFIX = ".compromised"  # appended to the private key's file name


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
    """Every `<kid>.public.pem` in the folder that holds an Ed25519 key, except compromised
    kids; other files are skipped. Needs no private key (offline verification)."""
    keys: dict[str, Ed25519PublicKey] = {}
    if not keys_dir.is_dir():
        return keys
    for path in sorted(keys_dir.glob(f"*{PUBLIC_SUFFIX}")):
        kid = path.name[: -len(PUBLIC_SUFFIX)]
        if is_compromised(keys_dir, kid):
            continue
        try:
            keys[kid] = verification.public_key_from_pem(path.read_bytes())
        except (OSError, ValueError):
            continue
    return keys


def is_retired(keys_dir: Path, kid: str) -> bool:
    return (keys_dir / f"{kid}{RETIRED_SUFFIX}").exists()


def is_compromised(keys_dir: Path, kid: str) -> bool:
    return (keys_dir / f"{kid}{COMPROMISED_SUFFIX}").exists()


def _load_keyring() -> KeyRing:
    keys_dir = Path(settings.KEYS_DIR)
    kid = settings.KEY_ID
    public_keys = load_public_keys(keys_dir)
    if is_compromised(keys_dir, kid):
        # Not even loaded: a compromised key must not verify, let alone sign.
        error = f"signing key {kid} is compromised; generate a new key and set KEY_ID to it"
        return KeyRing(kid, None, error, public_keys)
    try:
        signing_key = load_private_key(
            Path(settings.PRIVATE_KEY_PATH), settings.PRIVATE_KEY_PASSPHRASE
        )
    except SigningKeyUnavailable as exc:
        return KeyRing(kid, None, str(exc), public_keys)
    # The signing key always verifies what it signed, even without its .public.pem.
    public_keys.setdefault(kid, signing_key.public_key())
    if is_retired(keys_dir, kid):
        error = f"signing key {kid} is retired; set KEY_ID to a newer key"
        return KeyRing(kid, None, error, public_keys)
    return KeyRing(kid, signing_key, None, public_keys)


def _file_stamp(path: str | os.PathLike) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_size)


# A change within this many nanoseconds of a load may share the load's mtime tick (file
# systems stamp with a coarse clock), so such a load is trusted for one call only.
_RACY_NS = 2_000_000_000
_cache: tuple[tuple, KeyRing, bool] | None = None
_cache_lock = threading.Lock()


def keyring() -> KeyRing:
    """The keys of this process, re-read when the settings naming them, the keys folder
    (a key added, retired, compromised: every such change creates or renames a file) or the
    private key file changed since the last read."""
    global _cache
    keys_dir, private_path = settings.KEYS_DIR, settings.PRIVATE_KEY_PATH
    dir_stamp, private_stamp = _file_stamp(keys_dir), _file_stamp(private_path)
    stamp = (
        keys_dir,
        settings.KEY_ID,
        private_path,
        settings.PRIVATE_KEY_PASSPHRASE,
        dir_stamp,
        private_stamp,
    )
    cached = _cache
    if cached is not None and cached[0] == stamp and not cached[2]:
        return cached[1]
    with _cache_lock:
        ring = _load_keyring()
        newest = max((s[0] for s in (dir_stamp, private_stamp) if s), default=0)
        _cache = (stamp, ring, time.time_ns() - newest < _RACY_NS)
    return ring


def reset() -> None:
    """Forget the loaded keys (after generating or rotating keys, and in tests)."""
    global _cache
    _cache = None


def signing_key_status() -> str | None:
    """None when a signing key is usable, else why not."""
    return keyring().signing_error


def _sign(claims: dict[str, Any], typ: str) -> tuple[str, str]:
    ring = keyring()
    if ring.signing_key is None:
        raise SigningKeyUnavailable(ring.signing_error)
    token = jwt.encode(
        claims,
        ring.signing_key,
        algorithm=ALGORITHM,
        headers={"kid": ring.signing_kid, "typ": typ},
    )
    return token, ring.signing_kid


def sign(claims: dict[str, Any]) -> tuple[str, str]:
    """Sign `claims` as a compact JWS with the current key; return (token, kid).

    Header `{"alg": "EdDSA", "typ": "JWT", "kid": <KEY_ID>}`. Callers own the claims: a
    perpetual license simply has no `exp` key. Raises SigningKeyUnavailable.
    """
    return _sign(claims, "JWT")


def sign_revocation_list(claims: dict[str, Any]) -> tuple[str, str]:
    """Sign a revocation list with the current key; return (token, kid).

    The header's `typ` is `aegis-rl+jwt`, which the license checks refuse, and the claims
    may not carry a `jti`: a list can never be mistaken for a license, nor a license for a
    list. Raises SigningKeyUnavailable, ValueError (claims carrying a `jti`).
    """
    if "jti" in claims:
        raise ValueError("a revocation list carries no jti")
    return _sign(claims, REVOCATION_LIST_TYP)


def sign_lease(claims: dict[str, Any]) -> tuple[str, str]:
    """Sign a lease (CONTRACT §9) with the current key; return (token, kid).

    The header's `typ` is `aegis-lease+jwt`, which the license checks refuse (and the lease
    checks refuse a license), and the claims must name their license (`lic`): a lease never
    passes for a license, nor a license for a lease. Raises SigningKeyUnavailable,
    ValueError (claims without `lic`).
    """
    if "lic" not in claims:
        raise ValueError("a lease names its license (lic)")
    return _sign(claims, LEASE_TYP)


def signing_key_thumbprint() -> str | None:
    """The RFC 7638 thumbprint of the current signing key's public half (None when it
    cannot sign): names what signed a cached artefact, e.g. the revocation list."""
    ring = keyring()
    return thumbprint(ring.signing_key.public_key()) if ring.signing_key else None


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
    """Every verifying key (never a compromised one), sorted by kid."""
    return {"keys": [public_jwk(kid, key) for kid, key in sorted(keyring().public_keys.items())]}


def thumbprint(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) naming a public key in audit rows."""
    jwk = public_jwk("", key)
    members = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":")
    )
    digest = hashlib.sha256(members.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _kid_files(keys_dir: Path, kid: str) -> list[Path]:
    suffixes = (PRIVATE_SUFFIX, PUBLIC_SUFFIX, RETIRED_SUFFIX, COMPROMISED_SUFFIX)
    return [keys_dir / f"{kid}{suffix}" for suffix in suffixes]


def _refuse_used_kid(keys_dir: Path, kid: str) -> None:
    """A kid is never reused: clients cache keys by kid, so new material under an old kid
    would make them verify against the wrong key."""
    for path in _kid_files(keys_dir, kid):
        if path.exists():
            raise FileExistsError(str(path))


def write_keypair(keys_dir: Path, kid: str, *, passphrase: str | None = None) -> tuple[Path, Path]:
    """Create `<kid>.private.pem` (mode 0600 from the first byte) and `<kid>.public.pem`.

    Refuses to overwrite an existing key or to reuse the kid of a retired or compromised
    key (FileExistsError). Returns (private, public) paths.
    """
    keys_dir.mkdir(parents=True, exist_ok=True)
    private_path = keys_dir / f"{kid}{PRIVATE_SUFFIX}"
    public_path = keys_dir / f"{kid}{PUBLIC_SUFFIX}"
    _refuse_used_kid(keys_dir, kid)
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


# --- Key lifecycle (file operations; the services in licensing/keys.py audit them) ---------


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    state: str  # "active" | "retired" | "compromised"
    can_sign: bool  # has a private key and is neither retired nor compromised
    verifies: bool
    current: bool  # named by KEY_ID


def key_inventory() -> list[KeyInfo]:
    """Every kid that has a key file in KEYS_DIR (or is KEY_ID with a usable key), with its
    state."""
    keys_dir = Path(settings.KEYS_DIR)
    ring = keyring()
    kids = {settings.KEY_ID}
    if keys_dir.is_dir():
        for path in keys_dir.iterdir():
            for suffix in (PRIVATE_SUFFIX, PUBLIC_SUFFIX, RETIRED_SUFFIX, COMPROMISED_SUFFIX):
                if path.name.endswith(suffix) and len(path.name) > len(suffix):
                    kids.add(path.name[: -len(suffix)])
    inventory = []
    for kid in sorted(kids):
        private = bool(_private_paths(keys_dir, kid))
        if is_compromised(keys_dir, kid):
            state = "compromised"
        elif is_retired(keys_dir, kid):
            state = "retired"
        else:
            state = "active"
        if state != "active" or private or kid in ring.public_keys:
            inventory.append(
                KeyInfo(
                    kid=kid,
                    state=state,
                    can_sign=private and state == "active",
                    verifies=kid in ring.public_keys,
                    current=kid == settings.KEY_ID,
                )
            )
    return inventory


def _create_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a new file; FileExistsError if it exists (O_EXCL: no race, no overwrite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def write_public_key(keys_dir: Path, kid: str, key: Ed25519PublicKey) -> Path:
    """Write `<kid>.public.pem` (a verification-only key). Refuses to overwrite any file of
    that kid or to reuse a retired or compromised kid (FileExistsError)."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    _refuse_used_kid(keys_dir, kid)
    path = keys_dir / f"{kid}{PUBLIC_SUFFIX}"
    _create_file(path, public_key_pem(key))
    reset()
    return path


def _private_paths(keys_dir: Path, kid: str) -> list[Path]:
    paths = [keys_dir / f"{kid}{PRIVATE_SUFFIX}"]
    if kid == settings.KEY_ID and Path(settings.PRIVATE_KEY_PATH) not in paths:
        paths.append(Path(settings.PRIVATE_KEY_PATH))
    return [p for p in paths if p.exists()]


def mark_retired(keys_dir: Path, kid: str) -> Path:
    """Create `<kid>.retired`: the key stops signing and keeps verifying. A key known only
    through its private key gets its `<kid>.public.pem` first, so its tokens still verify
    once KEY_ID names another key. Raises FileExistsError when already retired."""
    public = keys_dir / f"{kid}{PUBLIC_SUFFIX}"
    key = keyring().public_keys.get(kid)
    marker = keys_dir / f"{kid}{RETIRED_SUFFIX}"
    if marker.exists():
        raise FileExistsError(str(marker))
    if not public.exists() and key is not None:
        _create_file(public, public_key_pem(key))
    _create_file(marker, f"retired at {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}\n")
    reset()
    return marker


def mark_compromised(keys_dir: Path, kid: str) -> list[Path]:
    """Stop a key from signing and from verifying; return the files it renamed or created.

    The private key is renamed first (it can never sign again, whatever happens next), then
    the public key becomes `<kid>.compromised.pem`. Each step is skipped when already done,
    so a run interrupted half-way can simply be repeated.
    """
    key = keyring().public_keys.get(kid)
    changed: list[Path] = []
    for private in _private_paths(keys_dir, kid):
        target = private.with_name(private.name + COMPROMISED_PRIVATE_SUFFIX)
        if target.exists():
            target = private.with_name(
                f"{private.name}.{time.time_ns()}{COMPROMISED_PRIVATE_SUFFIX}"
            )
        os.rename(private, target)
        changed.append(target)
    public = keys_dir / f"{kid}{PUBLIC_SUFFIX}"
    marker = keys_dir / f"{kid}{COMPROMISED_SUFFIX}"
    if public.exists():
        os.rename(public, marker)
    else:
        _create_file(marker, public_key_pem(key) if key is not None else "")
    changed.append(marker)
    reset()
    return changed

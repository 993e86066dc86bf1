"""Signing-key lifecycle: import a verification key, retire a key, declare one compromised.

Keys stay files (see `licensing.signing`); these services decide whether a change is allowed,
write its audit row and then ask the signer to change the files, all inside one transaction:
if the audit row cannot be written no file changes, and if the file operation fails the audit
row is rolled back. Every running process notices the change on its next use of the keys.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.db import transaction

from aegis.core.exceptions import Conflict, NotFound, ValidationFailed
from audit.services import audit_record
from licensing import signing, verification

KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
MAX_PEM_BYTES = 16 * 1024


class SigningKeyNotFound(NotFound):
    code = "signing_key_not_found"
    default_detail = "No key with this id in the keys folder."


class SigningKeyExists(Conflict):
    code = "signing_key_exists"
    default_detail = "A key with this id exists or existed; key ids are never reused."


class SigningKeyAlreadyRetired(Conflict):
    code = "signing_key_already_retired"
    default_detail = "The key is already retired."


class SigningKeyAlreadyCompromised(Conflict):
    code = "signing_key_already_compromised"
    default_detail = "The key is already marked compromised."


def validate_key_id(key_id: object) -> str:
    """A key id safe as a file name and a JWS `kid`; raise ValidationFailed otherwise."""
    if not isinstance(key_id, str) or not KEY_ID_RE.match(key_id):
        raise ValidationFailed.field("key_id", "Use letters, digits, '.', '_' or '-' (64 at most).")
    return key_id


def _keys_dir() -> Path:
    return Path(settings.KEYS_DIR)


def _find(key_id: str) -> signing.KeyInfo:
    for info in signing.key_inventory():
        if info.kid == key_id:
            return info
    raise SigningKeyNotFound(f"No key {key_id} in {_keys_dir()}.")


@transaction.atomic
def signing_key_import(*, actor: str, key_id: str, pem: bytes) -> Path:
    """Add a verification-only key (e.g. the public key of an older server) as
    `<key_id>.public.pem`; audit `signing_key.imported` with its RFC 7638 thumbprint.

    Raises ValidationFailed (bad key id, not an Ed25519 public key in PEM form),
    SigningKeyExists (the id is or was in use: never overwritten, never reused).
    """
    key_id = validate_key_id(key_id)
    if not isinstance(pem, bytes) or len(pem) > MAX_PEM_BYTES:
        raise ValidationFailed.field("pem", "Must be a PEM public key of at most 16 KiB.")
    try:
        key = verification.public_key_from_pem(pem)
    except (ValueError, TypeError):
        # The library's message could quote the file; ours names the problem only.
        raise ValidationFailed.field(
            "pem", "Not an Ed25519 public key in PEM form (BEGIN PUBLIC KEY)."
        ) from None
    if any(info.kid == key_id for info in signing.key_inventory()):
        raise SigningKeyExists(f"Key id {key_id} is or was in use; choose another id.")
    audit_record(
        event_type="signing_key.imported",
        actor=actor,
        event_data={"key_id": key_id, "thumbprint": signing.thumbprint(key)},
    )
    try:
        return signing.write_public_key(_keys_dir(), key_id, key)
    except FileExistsError:
        # Created between the check above and now: the transaction (and its audit row)
        # rolls back.
        raise SigningKeyExists(f"Key id {key_id} is or was in use; choose another id.") from None


@transaction.atomic
def signing_key_retire(*, actor: str, key_id: str, compromised: bool = False) -> list[Path]:
    """Retire a key (it stops signing, keeps verifying: audit `signing_key.retired`) or
    declare it compromised (it stops signing and verifying, JWKS drops it, its tokens answer
    UNKNOWN_KEY: audit `signing_key.compromised`). Returns the files created or renamed.

    A retired key may later be declared compromised; nothing goes the other way.
    Raises ValidationFailed, SigningKeyNotFound, SigningKeyAlreadyRetired,
    SigningKeyAlreadyCompromised.
    """
    key_id = validate_key_id(key_id)
    info = _find(key_id)
    if info.state == "compromised":
        raise SigningKeyAlreadyCompromised(f"Key {key_id} is already marked compromised.")
    if info.state == "retired" and not compromised:
        raise SigningKeyAlreadyRetired(f"Key {key_id} is already retired.")
    public_key = signing.keyring().public_keys.get(key_id)
    audit_record(
        event_type="signing_key.compromised" if compromised else "signing_key.retired",
        actor=actor,
        event_data={
            "key_id": key_id,
            "thumbprint": signing.thumbprint(public_key) if public_key else None,
            "was_signing_key": info.current,
            "previous_state": info.state,
        },
    )
    if compromised:
        return signing.mark_compromised(_keys_dir(), key_id)
    return [signing.mark_retired(_keys_dir(), key_id)]

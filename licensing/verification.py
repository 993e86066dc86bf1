"""Offline verification of AEGIS license tokens — pure Python, no Django.

This module is the one place that decides what a token means. The server's validate
endpoint and the `verify_license` command use it, and Odoo addons may vendor this single
file (it needs only PyJWT >= 2.13 and cryptography) so that clients and server speak the
same code vocabulary (CONTRACT §2).

Checks run in the contract's order and the first failure sets the code:
MALFORMED → UNKNOWN_KEY → BAD_SIGNATURE → WRONG_ISSUER → EXPIRED → (server only:
UNKNOWN_LICENSE, REVOKED, SUSPENDED) → MODULE_MISMATCH → VERSION_NOT_ALLOWED →
FINGERPRINT_REQUIRED → FINGERPRINT_MISMATCH → (server only: TRIAL_USED, NOT_ACTIVATED,
SEATS_EXCEEDED) → VALID.

Leases (CONTRACT §9, `Verifier.verify_lease`): what an activated instance holds offline, a
compact JWS with its own `typ` (`aegis-lease+jwt`), checked with the same codes in the same
order against the instance's own fingerprint; a revocation list naming the lease id (a
released seat) or its license answers REVOKED.

Security choices:
- the algorithm is never taken from the token: only EdDSA is accepted, and keys are
  `Ed25519PublicKey` objects, so no HMAC-with-public-key or `alg: none` confusion exists;
- the header may hold `alg`, `typ` and `kid` only: `jku`, `x5u`, `jwk`, `crit` and the rest
  are refused as MALFORMED, so a token can never point us at a key or a URL;
- every failure is mapped to a code with a fixed message; no exception text leaks out;
- a signed revocation list carries its own `typ` (`aegis-rl+jwt`), and so does a lease
  (`aegis-lease+jwt`): each check refuses the others as MALFORMED, so none can stand in
  for another.

Revocation lists (`Verifier.with_revocation_list`) let an offline client learn which licenses
were revoked: a list is accepted only when signed by a known key, issued by our issuer, not
expired, and not older (`seq`) than the list the verifier already holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.exceptions import InvalidSignatureError, PyJWTError

ALGORITHM = "EdDSA"
LICENSE_TYPES = ("perpetual", "subscription", "demo")
FINGERPRINT_ALGORITHM = "sha256-dbuuid-domain"
MAX_TOKEN_LENGTH = 16 * 1024
REVOCATION_LIST_TYP = "aegis-rl+jwt"
LEASE_TYP = "aegis-lease+jwt"
ENVIRONMENTS = ("production", "staging")
MAX_REVOCATION_LIST_LENGTH = 8 * 1024 * 1024
_ALLOWED_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_FINGERPRINT_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# "17", "17.0", "17.0+e", "saas~17.2" → "17"
_ODOO_VERSION_RE = re.compile(r"^(?:saas~)?(\d{1,4})(?:\.\d{1,4})*(?:\+e)?\Z")


class Code(StrEnum):
    """The codes in the contract's order (the server decides it: licensing/rules.py)."""

    MALFORMED = "MALFORMED"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    WRONG_ISSUER = "WRONG_ISSUER"
    EXPIRED = "EXPIRED"
    UNKNOWN_LICENSE = "UNKNOWN_LICENSE"
    REVOKED = "REVOKED"
    SUSPENDED = "SUSPENDED"
    MODULE_MISMATCH = "MODULE_MISMATCH"
    VERSION_NOT_ALLOWED = "VERSION_NOT_ALLOWED"
    FINGERPRINT_REQUIRED = "FINGERPRINT_REQUIRED"
    FINGERPRINT_MISMATCH = "FINGERPRINT_MISMATCH"
    TRIAL_USED = "TRIAL_USED"
    NOT_ACTIVATED = "NOT_ACTIVATED"
    SEATS_EXCEEDED = "SEATS_EXCEEDED"
    VALID = "VALID"


MESSAGES: dict[Code, str] = {
    Code.MALFORMED: "The token is not a well-formed AEGIS license.",
    Code.UNKNOWN_KEY: "The token was signed with a key this server does not know.",
    Code.BAD_SIGNATURE: "The token signature is invalid.",
    Code.WRONG_ISSUER: "The token was not issued by this license server.",
    Code.EXPIRED: "The license has expired.",
    Code.UNKNOWN_LICENSE: "No license with this id exists.",
    Code.REVOKED: "The license has been revoked.",
    Code.SUSPENDED: "The customer holding this license is suspended.",
    Code.MODULE_MISMATCH: "The license is for another module.",
    Code.VERSION_NOT_ALLOWED: "The license does not cover this Odoo version.",
    Code.FINGERPRINT_REQUIRED: "The license is bound to an instance; instance details are required.",
    Code.FINGERPRINT_MISMATCH: "The license is bound to another instance.",
    Code.TRIAL_USED: "A trial of this module already ran on this database.",
    Code.NOT_ACTIVATED: "This instance holds no active seat of the license; activate it first.",
    Code.SEATS_EXCEEDED: "Every seat of the license is taken.",
    Code.VALID: None,  # type: ignore[dict-item]
}


@dataclass(frozen=True)
class Result:
    """The outcome of a check. `claims` is set whenever the signature verified."""

    code: Code
    claims: Mapping[str, Any] | None = None
    header: Mapping[str, Any] | None = None

    @property
    def valid(self) -> bool:
        return self.code is Code.VALID

    @property
    def error(self) -> str | None:
        return MESSAGES[self.code]


# --- Fingerprints and versions ------------------------------------------------------------


def instance_domain(value: str) -> str:
    """The network location (host[:port]) of `web.base.url`, or the value as given when it is
    not a URL. No other normalisation: the Odoo client computes the same bytes offline."""
    netloc = urlsplit(value).netloc if "://" in value else ""
    if not netloc:
        return value
    return netloc.rsplit("@", 1)[-1]  # drop any user:password@


def compute_fingerprint(db_uuid: str, domain: str) -> str:
    """`"sha256:" + sha256(f"{db_uuid}:{domain}")` with the domain reduced as above."""
    material = _utf8(f"{db_uuid}:{instance_domain(domain)}")
    return "sha256:" + hashlib.sha256(material).hexdigest()


def _utf8(text: str) -> bytes:
    # "surrogatepass": a lone surrogate (valid in JSON, not in UTF-8) compares and hashes
    # like any other character instead of raising out of the verifier.
    return text.encode("utf-8", "surrogatepass")


def is_fingerprint(value: object) -> bool:
    return isinstance(value, str) and bool(_FINGERPRINT_RE.match(value))


def odoo_major(odoo_version: str) -> str | None:
    """The major version of an Odoo version string, or None when it cannot be read."""
    match = _ODOO_VERSION_RE.match(odoo_version.strip()) if isinstance(odoo_version, str) else None
    return str(int(match.group(1))) if match else None


# --- Keys ---------------------------------------------------------------------------------


def public_key_from_pem(pem: bytes) -> Ed25519PublicKey:
    """Parse a PEM public key; raise ValueError unless it is an Ed25519 key."""
    key = load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def keys_from_jwks(document: object) -> dict[str, Ed25519PublicKey]:
    """The verification keys of a JWKS document (e.g. `/.well-known/jwks.json`), by `kid`.

    Only OKP/Ed25519 keys with a `kid`, meant for signatures (`use` absent or `sig`, `alg`
    absent or `EdDSA`) and without private members are kept; other entries are skipped.
    Raises ValueError when the document is not a JWKS at all.
    """
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS document")
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in entries:
        if not isinstance(jwk, dict) or "d" in jwk:
            continue
        kid, x = jwk.get("kid"), jwk.get("x")
        if (
            jwk.get("kty") != "OKP"
            or jwk.get("crv") != "Ed25519"
            or jwk.get("use", "sig") != "sig"
            or jwk.get("alg", ALGORITHM) != ALGORITHM
            or not isinstance(kid, str)
            or not kid
            or not isinstance(x, str)
            or not _SEGMENT_RE.match(x)
        ):
            continue
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            continue
    return keys


# --- Claims -------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _claims_well_formed(claims: object) -> bool:
    """The claims every AEGIS license carries, with their types (CONTRACT §1)."""
    if not _entitlement_well_formed(claims):
        return False
    # Perpetual licenses never expire; the others always do.
    return (claims["license_type"] == "perpetual") != ("exp" in claims)


def _lease_claims_well_formed(claims: object) -> bool:
    """The claims of a lease (CONTRACT §9): those of its license, an `exp` always (a lease
    of a perpetual license expires too), `lic` (the license id), the instance's
    `instance_fingerprint` and its `environment`."""
    return (
        _entitlement_well_formed(claims)
        and _is_int(claims.get("exp"))
        and _is_uuid(claims.get("lic"))
        and is_fingerprint(claims.get("instance_fingerprint"))
        and claims.get("environment") in ENVIRONMENTS
    )


def _entitlement_well_formed(claims: object) -> bool:
    """What a license and a lease share: `jti`, `iss`, `iat`, `customer`, `module`,
    `license_type`, an integer `exp` when present, a well-formed `instance_fingerprint`."""
    if not isinstance(claims, dict):
        return False
    customer, module = claims.get("customer"), claims.get("module")
    if not _is_uuid(claims.get("jti")):
        return False
    if not isinstance(claims.get("iss"), str) or not _is_int(claims.get("iat")):
        return False
    if not isinstance(customer, dict) or not isinstance(customer.get("id"), str):
        return False
    if not isinstance(customer.get("name"), str):
        return False
    if not isinstance(module, dict) or not isinstance(module.get("technical_name"), str):
        return False
    versions = module.get("allowed_major_versions")
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        return False
    license_type = claims.get("license_type")
    if license_type not in LICENSE_TYPES:
        return False
    if "exp" in claims and not _is_int(claims["exp"]):
        return False
    return "instance_fingerprint" not in claims or is_fingerprint(claims["instance_fingerprint"])


# --- Revocation lists ---------------------------------------------------------------------


class ListRejection(StrEnum):
    """Why a revocation list was refused (the first five mirror the license codes)."""

    MALFORMED = "MALFORMED"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    WRONG_ISSUER = "WRONG_ISSUER"
    EXPIRED = "EXPIRED"
    STALE = "STALE"


LIST_MESSAGES: dict[ListRejection, str] = {
    ListRejection.MALFORMED: "The revocation list is not a well-formed AEGIS revocation list.",
    ListRejection.UNKNOWN_KEY: "The revocation list was signed with a key this client does not know.",
    ListRejection.BAD_SIGNATURE: "The revocation list signature is invalid.",
    ListRejection.WRONG_ISSUER: "The revocation list was not issued by this license server.",
    ListRejection.EXPIRED: "The revocation list has expired; fetch a fresh one.",
    ListRejection.STALE: "The revocation list is older than the one already held.",
}


class RevocationListRejected(Exception):
    """A revocation list that must not be used; `reason` says why (fixed message)."""

    def __init__(self, reason: ListRejection) -> None:
        self.reason = reason
        super().__init__(LIST_MESSAGES[reason])


@dataclass(frozen=True)
class RevocationList:
    """A verified revocation list. `module` is set when the list covers one module only."""

    seq: int
    issued_at: int
    expires_at: int
    revoked: frozenset[str]
    module: str | None
    kid: str
    token: str


def _canonical_id(value: str) -> str:
    """License ids compare as UUIDs (`str(UUID)`: lowercase, hyphenated)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return value


def _list_claims_well_formed(claims: object) -> bool:
    if not isinstance(claims, dict):
        return False
    if not isinstance(claims.get("iss"), str):
        return False
    if not all(_is_int(claims.get(name)) for name in ("iat", "exp", "seq")) or claims["seq"] < 0:
        return False
    if "module" in claims and not isinstance(claims["module"], str):
        return False
    revoked = claims.get("revoked")
    if not isinstance(revoked, list):
        return False
    for license_id in revoked:
        if not isinstance(license_id, str):
            return False
        try:
            uuid.UUID(license_id)
        except ValueError:
            return False
    return True


# --- The verifier -------------------------------------------------------------------------


def _is_canonical_segment(segment: str) -> bool:
    """True when `segment` is THE base64url spelling of its bytes: only the alphabet, no
    padding, no line break, unused low bits zero. Each token then has exactly one spelling,
    whatever PyJWT version a vendoring client runs (lenient decoders accept variants)."""
    if not _SEGMENT_RE.fullmatch(segment) or len(segment) % 4 == 1:
        return False
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == segment


class Verifier:
    """Verifies tokens and leases against a `kid → Ed25519PublicKey` map.

    `clock` returns the current UNIX time (injectable for tests and frozen-clock checks);
    `revoked` is a set of revoked license and lease ids (from a verified revocation list)
    consulted by `verify()` and `verify_lease()` for offline use. `with_revocation_list()` returns a verifier that also knows
    the ids of a verified list; `revocation_list` is the newest list it accepted (or None).
    """

    def __init__(
        self,
        keys: Mapping[str, Ed25519PublicKey],
        issuer: str,
        *,
        leeway: int = 0,
        clock: Callable[[], float] = time.time,
        revoked: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        for kid, key in keys.items():
            if not isinstance(key, Ed25519PublicKey):
                raise TypeError(f"verification key {kid!r} is not an Ed25519PublicKey")
        self.keys = dict(keys)
        self.issuer = issuer
        self.leeway = leeway
        self.clock = clock
        self.revoked = frozenset(_canonical_id(v) for v in revoked)
        self.revocation_list: RevocationList | None = None
        self._jws = jwt.PyJWS(algorithms=[ALGORITHM])

    # -- shared steps: parse without trusting, then check the signature

    def _parse(self, token: object, max_length: int) -> tuple[dict, object] | None:
        """(header, claims) of a compact EdDSA JWS, signature NOT yet checked; None when it
        is not one."""
        if not isinstance(token, str) or not 0 < len(token) <= max_length:
            return None
        segments = token.split(".")
        if len(segments) != 3 or not all(_is_canonical_segment(s) for s in segments):
            return None
        try:
            parsed = self._jws.decode_complete(token, options={"verify_signature": False})
            claims = json.loads(parsed["payload"])
        except (PyJWTError, ValueError, RecursionError):
            return None
        header = parsed["header"]
        if header.get("alg") != ALGORITHM or not set(header) <= _ALLOWED_HEADER_KEYS:
            return None
        return header, claims

    def _signature_problem(self, token: str, header: Mapping[str, Any]) -> Code | None:
        key = self.keys.get(header.get("kid"))  # a str or absent: PyJWS refused any other kid
        if key is None:
            return Code.UNKNOWN_KEY
        try:
            self._jws.decode_complete(token, key=key, algorithms=[ALGORITHM])
        except InvalidSignatureError:
            return Code.BAD_SIGNATURE
        except PyJWTError:
            return Code.MALFORMED
        return None

    def _expired(self, exp: int) -> bool:
        # Expired at `exp` itself (RFC 7519 §4.1.4: "on or after"), give or take the leeway.
        return exp + self.leeway <= self.clock()

    # -- licenses

    def verify_token(self, token: object) -> Result:
        """Decide MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER, EXPIRED, or VALID."""
        return self.check_expiry(self.verify_signature(token))

    def verify_signature(self, token: object) -> Result:
        """Decide MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER, or VALID: everything
        about a token that does not change with time. A VALID result stays true of the same
        token for this verifier, so a caller may keep it (the server does, per token string)
        and pass it to `check_expiry` on every use."""
        # A missing typ is tolerated (some JOSE libraries omit it); any other typ, such as a
        # revocation list's or a lease's, is not a license.
        return self._verified(token, "JWT", _claims_well_formed)

    def _verified(self, token: object, typ: str, well_formed: Callable[[object], bool]) -> Result:
        """`verify_signature` for a signed document of header `typ` whose claims pass
        `well_formed`; only a license ("JWT") may omit its typ."""
        parsed = self._parse(token, MAX_TOKEN_LENGTH)
        if parsed is None:
            return Result(Code.MALFORMED)
        header, claims = parsed
        presented = header.get("typ", "JWT") if typ == "JWT" else header.get("typ")
        if presented != typ or not well_formed(claims):
            return Result(Code.MALFORMED)
        problem = self._signature_problem(token, header)
        if problem is not None:
            return Result(problem)
        if not hmac.compare_digest(_utf8(claims["iss"]), _utf8(self.issuer)):
            return Result(Code.WRONG_ISSUER, claims, header)
        return Result(Code.VALID, claims, header)

    def check_expiry(self, result: Result) -> Result:
        """EXPIRED for a `verify_signature` result whose `exp` has passed, now; else `result`."""
        if result.valid and "exp" in result.claims and self._expired(result.claims["exp"]):
            return Result(Code.EXPIRED, result.claims, result.header)
        return result

    def is_revoked(self, license_id: str) -> bool:
        """True when a verified revocation list (or `revoked`) names this license id."""
        return _canonical_id(license_id) in self.revoked

    def check_usage(
        self,
        claims: Mapping[str, Any],
        *,
        module_name: str,
        odoo_version: str,
        fingerprint: str | None = None,
        instance_db_uuid: str | None = None,
        instance_domain: str | None = None,
    ) -> Result:
        """Decide MODULE_MISMATCH, VERSION_NOT_ALLOWED, FINGERPRINT_REQUIRED,
        FINGERPRINT_MISMATCH, or VALID for claims whose signature verified."""
        module = claims["module"]
        if module_name != module["technical_name"]:
            return Result(Code.MODULE_MISMATCH, claims)
        if odoo_major(odoo_version) not in module["allowed_major_versions"]:
            return Result(Code.VERSION_NOT_ALLOWED, claims)
        bound_to = claims.get("instance_fingerprint")
        if bound_to:
            if fingerprint:
                presented = fingerprint
            elif instance_db_uuid and instance_domain:
                presented = compute_fingerprint(instance_db_uuid, instance_domain)
            else:
                return Result(Code.FINGERPRINT_REQUIRED, claims)
            if not hmac.compare_digest(_utf8(presented), _utf8(bound_to)):
                return Result(Code.FINGERPRINT_MISMATCH, claims)
        return Result(Code.VALID, claims)

    def verify(
        self, token: object, *, module_name: str, odoo_version: str, **instance: Any
    ) -> Result:
        """Every check a client can make offline, in the contract's order. A license listed
        in `revoked` answers REVOKED; UNKNOWN_LICENSE and SUSPENDED need the server."""
        result = self.verify_token(token)
        if not result.valid:
            return result
        if self.is_revoked(result.claims["jti"]):
            return Result(Code.REVOKED, result.claims, result.header)
        usage = self.check_usage(
            result.claims, module_name=module_name, odoo_version=odoo_version, **instance
        )
        return Result(usage.code, result.claims, result.header)

    # -- leases

    def verify_lease_signature(self, lease: object) -> Result:
        """`verify_signature` for a lease: MALFORMED (not a lease — a license, a revocation
        list, claims missing), UNKNOWN_KEY, BAD_SIGNATURE, WRONG_ISSUER, or VALID."""
        return self._verified(lease, LEASE_TYP, _lease_claims_well_formed)

    def verify_lease_token(self, lease: object) -> Result:
        """The checks of a lease that need no instance: MALFORMED … EXPIRED, then REVOKED
        when a verified revocation list names the lease (its seat was released) or its
        license."""
        result = self.check_expiry(self.verify_lease_signature(lease))
        if result.valid and (
            self.is_revoked(result.claims["jti"]) or self.is_revoked(result.claims["lic"])
        ):
            return Result(Code.REVOKED, result.claims, result.header)
        return result

    def verify_lease(
        self,
        lease: object,
        *,
        module_name: str,
        odoo_version: str,
        fingerprint: str | None = None,
        instance_db_uuid: str | None = None,
        instance_domain: str | None = None,
    ) -> Result:
        """Every check a client can make offline of the lease it holds, in the contract's
        order: MALFORMED … EXPIRED, REVOKED (a verified revocation list names the lease —
        its seat was released — or its license), then MODULE_MISMATCH …
        FINGERPRINT_MISMATCH against the instance's own fingerprint (`fingerprint`, or
        `instance_db_uuid` + `instance_domain`; without them FINGERPRINT_REQUIRED: a lease
        always names its instance). VALID: the instance holds its seat until `exp`."""
        result = self.verify_lease_token(lease)
        if not result.valid:
            return result
        usage = self.check_usage(
            result.claims,
            module_name=module_name,
            odoo_version=odoo_version,
            fingerprint=fingerprint,
            instance_db_uuid=instance_db_uuid,
            instance_domain=instance_domain,
        )
        return Result(usage.code, result.claims, result.header)

    # -- revocation lists

    def verify_revocation_list(self, token: object, *, min_seq: int = 0) -> RevocationList:
        """Verify a signed revocation list; raise RevocationListRejected unless it is
        well formed, signed by a known key, ours, unexpired, and its `seq` is at least
        `min_seq` and at least that of the list this verifier already holds. An equal `seq`
        is accepted: the server re-signs an unchanged list to extend its expiry."""
        parsed = self._parse(token, MAX_REVOCATION_LIST_LENGTH)
        if parsed is None:
            raise RevocationListRejected(ListRejection.MALFORMED)
        header, claims = parsed
        if header.get("typ") != REVOCATION_LIST_TYP or not _list_claims_well_formed(claims):
            raise RevocationListRejected(ListRejection.MALFORMED)
        problem = self._signature_problem(token, header)
        if problem is not None:
            raise RevocationListRejected(ListRejection(problem.value))
        if not hmac.compare_digest(_utf8(claims["iss"]), _utf8(self.issuer)):
            raise RevocationListRejected(ListRejection.WRONG_ISSUER)
        if self._expired(claims["exp"]):
            raise RevocationListRejected(ListRejection.EXPIRED)
        held = self.revocation_list.seq if self.revocation_list else 0
        if claims["seq"] < max(min_seq, held):
            raise RevocationListRejected(ListRejection.STALE)
        return RevocationList(
            seq=claims["seq"],
            issued_at=claims["iat"],
            expires_at=claims["exp"],
            revoked=frozenset(_canonical_id(v) for v in claims["revoked"]),
            module=claims.get("module"),
            kid=header["kid"],
            token=token,
        )

    def with_revocation_list(self, token: object, *, min_seq: int = 0) -> Verifier:
        """A copy of this verifier that also answers REVOKED for the ids of a verified list
        (revocation is final, so ids already known stay revoked). Raises
        RevocationListRejected; this verifier is left unchanged either way."""
        revocation_list = self.verify_revocation_list(token, min_seq=min_seq)
        clone = Verifier(
            self.keys,
            self.issuer,
            leeway=self.leeway,
            clock=self.clock,
            revoked=self.revoked | revocation_list.revoked,
        )
        clone.revocation_list = revocation_list
        return clone

"""The signed revocation list: how offline clients learn that a license was revoked, or a
seat released.

`revocation_list_get()` answers `GET /api/v1/licenses/revocations`: a compact JWS signed by
the current key (header `typ: aegis-rl+jwt`, so it can never pass for a license) whose
claims are `iss`, `iat`, `exp` (REVOCATION_LIST_TTL_HOURS later), `seq`, `revoked` (sorted
ids: revoked licenses, and the lease ids — activation ids — of released seats whose lease
had not run out at `iat`; an expired lease needs no listing) and, when narrowed, `module`.

`seq` is the number of revoked licenses plus released activations. Revocation and release
are final and neither licenses nor activations are ever deleted, so the count only grows,
every process and every restart computes the same value from the database, and — unlike an
audit row id, which is drawn before its transaction commits — a given count always
describes the same committed set (the list drops a released lease once it has run out). Clients keep the highest `seq` they
have seen and refuse an older list (a replay that would "un-revoke" a license).

Signing is cheap but fetching every revoked id is not, so a signed list is cached (Django's
cache, shared by the workers) per signing key, `seq`, module and time bucket. `iat` is the
start of the bucket, and Ed25519 signatures are deterministic, so every worker produces the
same bytes and the same ETag for the same bucket.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import DateTimeField, Value
from django.utils import timezone

from aegis.core.exceptions import ValidationFailed
from licensing import signing
from licensing.models import Activation, License
from licensing.services import MODULE_NAME_RE, SigningUnavailable

CACHE_PREFIX = "aegis:revocations:v1"


@dataclass(frozen=True)
class SignedRevocationList:
    token: str
    seq: int
    expires_at: dt.datetime
    module: str | None

    @property
    def etag(self) -> str:
        """A strong validator: the list's bytes, hashed."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:32]


def revoked_seq() -> int:
    """The current `seq`: the number of revoked licenses and released activations (see the
    module docstring)."""
    # One statement: both counts from the same snapshot.
    released = _released().values("pk")
    return License.objects.revoked().order_by().values("pk").union(released, all=True).count()


def _released():
    return Activation.objects.filter(released_at__isnull=False).order_by()


def _bucket_seconds(ttl: int) -> int:
    """How long one signed list is reused: an hour for the default day-long lists, never
    more than a 24th of their life, never less than a minute."""
    return max(60, min(3600, ttl // 24))


def revocation_list_get(
    *, module: str | None = None, now: dt.datetime | None = None
) -> SignedRevocationList:
    """The current signed revocation list, optionally narrowed to one module.

    Raises ValidationFailed (field `module`: not an Odoo technical name) and
    SigningUnavailable (no usable signing key). Writes nothing.
    """
    if module is not None and (not isinstance(module, str) or not MODULE_NAME_RE.match(module)):
        raise ValidationFailed.field(
            "module", "Must be an Odoo technical name, e.g. biz4a_payroll_drc."
        )
    key_thumbprint = signing.signing_key_thumbprint()
    if key_thumbprint is None:
        raise SigningUnavailable(
            "The signing key is unavailable; no revocation list can be signed."
        )

    ttl = settings.REVOCATION_LIST_TTL_HOURS * 3600
    bucket = _bucket_seconds(ttl)
    now_ts = int((now or timezone.now()).timestamp())
    issued_at = now_ts - now_ts % bucket
    issuer_tag = hashlib.sha256(settings.LICENSE_ISSUER.encode()).hexdigest()[:16]

    def cache_key(seq: int) -> str:
        scope = module or "*"
        return f"{CACHE_PREFIX}:{key_thumbprint}:{issuer_tag}:{ttl}:{issued_at}:{scope}:{seq}"

    cached = cache.get(cache_key(revoked_seq()))
    if cached is not None:
        return cached

    # One query: the ids and the count come from the same snapshot, so `seq` always
    # describes exactly the ids listed, even if a revocation commits meanwhile.
    licenses = (
        License.objects.revoked()
        .order_by()
        .values_list("id", "module_name", Value(None, output_field=DateTimeField()))
    )
    leases = _released().values_list("id", "license__module_name", "lease_expires_at")
    rows = list(licenses.union(leases, all=True))
    seq = len(rows)
    issued = dt.datetime.fromtimestamp(issued_at, tz=dt.UTC)
    revoked = sorted(
        str(pk)
        for pk, name, lease_expires_at in rows
        if (module is None or name == module)
        and (lease_expires_at is None or lease_expires_at > issued)
    )
    claims: dict[str, object] = {
        "iss": settings.LICENSE_ISSUER,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "seq": seq,
        "revoked": revoked,
    }
    if module is not None:
        claims["module"] = module
    try:
        token, _kid = signing.sign_revocation_list(claims)
    except signing.SigningKeyUnavailable as exc:
        raise SigningUnavailable(
            "The signing key is unavailable; no revocation list can be signed."
        ) from exc
    signed = SignedRevocationList(
        token=token,
        seq=seq,
        expires_at=dt.datetime.fromtimestamp(issued_at + ttl, tz=dt.UTC),
        module=module,
    )
    cache.set(cache_key(seq), signed, timeout=max(1, issued_at + bucket - now_ts))
    return signed

"""Properties of the verifier, checked on generated input (Hypothesis; profiles in conftest).

- whatever text or bytes it is given, the verifier answers a code and never raises;
- whatever claims the signer signs, the verifier gives them back unchanged, as VALID;
- no change to a signed token's string — a character replaced, removed or inserted — is
  ever VALID (not merely "never VALID under another identity": a token has one spelling).
"""

from __future__ import annotations

import base64
import json
import string
import time
import uuid

import jwt
import pytest
from django.conf import settings
from hypothesis import assume, given, note
from hypothesis import strategies as st

from licensing import signing
from licensing.verification import (
    Code,
    RevocationListRejected,
    compute_fingerprint,
    is_fingerprint,
    odoo_major,
)
from tests.conftest import TEST_KID

MODULE = "biz4a_payroll_drc"
JWS_ALPHABET = string.ascii_letters + string.digits + "-_"
# What an attacker would try in a token's place: characters of the format, and others.
TOKEN_CHARS = JWS_ALPHABET + ".=+/ \n\t\x00é{}\"'"
CODES = set(Code)
# Every code point, lone surrogates included: JSON can carry them, UTF-8 cannot.
ANY_TEXT = st.text(st.characters(exclude_categories=()))


def jws_like() -> st.SearchStrategy[str]:
    """Strings shaped like compact JWS: segments of the alphabet joined by dots."""
    segment = st.text(JWS_ALPHABET, max_size=120)
    return st.lists(segment, min_size=1, max_size=5).map(".".join)


def base64url_of_json() -> st.SearchStrategy[str]:
    """Three segments that each decode to JSON (the parser's deeper paths)."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )

    def encode(value) -> str:
        raw = json.dumps(value, allow_nan=True).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "jku", "crit"]), values, max_size=4
    ).map(lambda h: {"alg": "EdDSA", **h})
    return st.tuples(
        header.map(encode), values.map(encode), st.text(JWS_ALPHABET, max_size=90)
    ).map(".".join)


def any_token() -> st.SearchStrategy[object]:
    return st.one_of(
        ANY_TEXT,
        st.text(TOKEN_CHARS),
        st.binary(),
        jws_like(),
        base64url_of_json(),
        st.none(),
        st.integers(),
        st.lists(st.text(max_size=5), max_size=3),
    )


# --- Anything in, a code out ----------------------------------------------------------------


@given(token=any_token())
def test_any_input_gets_a_code_and_never_raises(token):
    verifier = signing.verifier()
    result = verifier.verify_token(token)
    assert result.code in CODES
    assert result.code is not Code.VALID
    # The offline all-in-one path, too.
    assert verifier.verify(token, module_name=MODULE, odoo_version="17").code is not Code.VALID


@given(token=any_token())
def test_any_input_as_a_revocation_list_is_rejected_with_a_reason(token):
    with pytest.raises(RevocationListRejected) as caught:
        signing.verifier().verify_revocation_list(token)
    assert caught.value.reason.value in {"MALFORMED", "UNKNOWN_KEY", "BAD_SIGNATURE"}


BOUND = "sha256:" + "ab" * 32


@pytest.fixture
def bound_token() -> str:
    claims = {
        "jti": str(uuid.uuid4()),
        "iss": settings.LICENSE_ISSUER,
        "iat": 1_700_000_000,
        "customer": {"id": "CUST-001", "name": "Acme"},
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17"]},
        "license_type": "perpetual",
        "instance_fingerprint": BOUND,
    }
    return signing.sign(claims)[0]


@given(
    module_name=st.text(max_size=40),
    odoo_version=ANY_TEXT,
    fingerprint=st.none() | ANY_TEXT,
    db_uuid=st.none() | ANY_TEXT,
    domain=st.none() | ANY_TEXT,
)
def test_any_instance_details_get_a_code_and_never_raise(
    bound_token, module_name, odoo_version, fingerprint, db_uuid, domain
):
    result = signing.verifier().verify(
        bound_token,
        module_name=module_name,
        odoo_version=odoo_version,
        fingerprint=fingerprint,
        instance_db_uuid=db_uuid,
        instance_domain=domain,
    )
    assert result.code in CODES
    if result.code is Code.VALID:  # only the instance it is bound to
        presented = fingerprint or compute_fingerprint(db_uuid, domain)
        assert presented == BOUND and module_name == MODULE and odoo_major(odoo_version) == "17"


@given(db_uuid=ANY_TEXT, domain=ANY_TEXT)
def test_any_instance_has_a_well_formed_fingerprint(db_uuid, domain):
    fingerprint = compute_fingerprint(db_uuid, domain)
    assert is_fingerprint(fingerprint)
    assert fingerprint == compute_fingerprint(db_uuid, domain)


@given(version=ANY_TEXT)
def test_odoo_major_never_raises(version):
    major = odoo_major(version)
    assert major is None or (major.isdigit() and str(int(major)) == major)


# --- Sign, then verify: the claims come back as signed ---------------------------------------


def license_claims() -> st.SearchStrategy[dict]:
    now = int(time.time())
    text = st.text(st.characters(exclude_categories=()), max_size=60)
    versions = st.lists(st.integers(0, 999).map(str), min_size=1, max_size=6, unique=True)
    common = st.fixed_dictionaries(
        {
            "jti": st.uuids().map(str),
            "iss": st.just(settings.LICENSE_ISSUER),
            "iat": st.integers(0, now - 60),
            "customer": st.fixed_dictionaries({"id": text, "name": text}),
            "module": st.fixed_dictionaries(
                {
                    "technical_name": st.from_regex(r"[a-z][a-z0-9_]{1,40}", fullmatch=True),
                    "allowed_major_versions": versions,
                }
            ),
        },
        optional={
            "instance_fingerprint": st.binary(min_size=32, max_size=32).map(
                lambda b: "sha256:" + b.hex()
            )
        },
    )
    perpetual = common.map(lambda c: c | {"license_type": "perpetual"})
    expiring = st.tuples(
        common, st.sampled_from(["subscription", "demo"]), st.integers(now + 86_400, 2**53)
    ).map(lambda t: t[0] | {"license_type": t[1], "exp": t[2]})
    return perpetual | expiring


@given(claims=license_claims())
def test_signed_claims_verify_unchanged(claims):
    token, kid = signing.sign(claims)
    assert kid == TEST_KID
    result = signing.verifier().verify_token(token)
    assert result.code is Code.VALID
    assert dict(result.claims) == claims
    # What the Odoo client does with PyJWT and the public key gives the same claims.
    public = signing.keyring().public_keys[TEST_KID]
    assert jwt.decode(token, public, algorithms=["EdDSA"], options={"verify_aud": False}) == claims


# --- Any change to a signed token is never VALID --------------------------------------------


@st.composite
def mutation(draw, token_length: int):
    kind = draw(st.sampled_from(["replace", "delete", "insert", "swap"]))
    index = draw(st.integers(0, token_length - 1))
    char = draw(st.sampled_from(TOKEN_CHARS))
    return kind, index, char


def mutate(token: str, kind: str, index: int, char: str) -> str:
    if kind == "replace":
        return token[:index] + char + token[index + 1 :]
    if kind == "delete":
        return token[:index] + token[index + 1 :]
    if kind == "insert":
        return token[:index] + char + token[index:]
    other = (index + 1) % len(token)
    chars = list(token)
    chars[index], chars[other] = chars[other], chars[index]
    return "".join(chars)


@pytest.fixture
def signed() -> str:
    claims = {
        "jti": str(uuid.uuid4()),
        "iss": settings.LICENSE_ISSUER,
        "iat": 1_700_000_000,
        "customer": {"id": "CUST-001", "name": "Acme"},
        "module": {"technical_name": MODULE, "allowed_major_versions": ["17", "18"]},
        "license_type": "subscription",
        "exp": 4_000_000_000,
    }
    return signing.sign(claims)[0]


@given(data=st.data())
def test_no_change_to_a_signed_token_is_valid(signed, data):
    kind, index, char = data.draw(mutation(len(signed)))
    changed = mutate(signed, kind, index, char)
    assume(changed != signed)
    note(f"{kind} at {index} ({signed[index]!r} → {char!r})")
    result = signing.verifier().verify_token(changed)
    assert result.code is not Code.VALID, result.claims


@given(data=st.data())
def test_no_two_changes_to_a_signed_token_are_valid(signed, data):
    changed = signed
    for _ in range(2):
        changed = mutate(changed, *data.draw(mutation(len(changed))))
    assume(changed != signed)
    assert signing.verifier().verify_token(changed).code is not Code.VALID


@pytest.fixture
def license_row(make_license, settings):
    settings.RATE_LIMIT_ENABLED = False  # every example is a request from one address
    return make_license()


@pytest.mark.django_db
@given(data=st.data())
def test_no_change_to_a_license_is_valid_on_the_validate_endpoint(anon, license_row, data):
    """The same property through the server, against a real license row."""
    token = license_row.token
    kind, index, char = data.draw(mutation(len(token)))
    changed = mutate(token, kind, index, char)
    assume(changed != token)
    response = anon.post(
        "/api/v1/licenses/validate",
        {"token": changed, "module_name": MODULE, "odoo_version": "17"},
        format="json",
    )
    if "\x00" in changed:
        assert response.status_code == 400  # NUL never reaches the verifier
        return
    assert response.status_code == 200, response.content[:300]
    assert response.json()["code"] != "VALID"
    assert response.json()["valid"] is False

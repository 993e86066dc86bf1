"""Forged, tampered and hostile tokens (CONTRACT §1-2).

Every case goes through both doors that judge a token — `POST /api/v1/licenses/validate`
and the offline `Verifier` that Odoo clients vendor — and must get the same contract code
from each: never a 500, never `VALID`. Most forgeries start from a real license row, so a
verifier that skipped a check would answer VALID rather than UNKNOWN_LICENSE.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import socket
import threading
import urllib.request
import uuid
from dataclasses import dataclass

import jwt.api_jws
import jwt.utils
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from audit.models import AuditLog
from licensing import signing
from licensing.services import license_revoke
from licensing.verification import Code, Verifier
from tests.api.conftest import assert_error
from tests.conftest import ACTOR, TEST_KID

pytestmark = pytest.mark.django_db

URL = "/api/v1/licenses/validate"
MODULE = "biz4a_payroll_drc"
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# --- Helpers ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def parts(token: str) -> tuple[dict, dict, bytes]:
    header, payload, signature = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload)), unb64(signature)


def assemble(header: dict, payload: dict, signature: bytes) -> str:
    return f"{b64(dumps(header))}.{b64(dumps(payload))}.{b64(signature)}"


def sign_with(key, header: dict, payload: dict) -> str:
    """A compact JWS over exactly this header and payload, signed by `key` (Ed25519/Ed448)."""
    signing_input = f"{b64(dumps(header))}.{b64(dumps(payload))}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


def hmac_token(alg: str, secret: bytes, payload: dict) -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header = {"alg": alg, "typ": "JWT", "kid": TEST_KID}
    signing_input = f"{b64(dumps(header))}.{b64(dumps(payload))}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


def our_public_key():
    return signing.keyring().public_keys[TEST_KID]


def api_answer(client, token, **fields) -> dict:
    body = {"token": token, "module_name": MODULE, "odoo_version": "17.0"} | fields
    response = client.post(URL, body, format="json")
    assert response.status_code == 200, (response.status_code, response.content[:300])
    answer = response.json()
    assert answer["valid"] is (answer["code"] == "VALID")
    return answer


def offline_code(token, **fields) -> Code:
    fields = {"module_name": MODULE, "odoo_version": "17.0"} | fields
    return signing.verifier().verify(token, **fields).code


def assert_code(client, token, code: Code, **fields) -> dict:
    """Both doors give `code`; a failing token never reports license fields it could not
    verify."""
    assert offline_code(token, **fields) is code
    answer = api_answer(client, token, **fields)
    assert answer["code"] == code.value, answer
    if code in (Code.MALFORMED, Code.UNKNOWN_KEY, Code.BAD_SIGNATURE):
        assert answer["license_id"] is None and answer["customer_id"] is None, answer
    return answer


@dataclass(frozen=True)
class Genuine:
    license: object
    header: dict
    payload: dict
    signature: bytes


@pytest.fixture
def real(make_license) -> Genuine:
    """A genuine perpetual license, its token taken apart. Tests change copies of the parts."""
    license = make_license()
    return Genuine(license, *parts(license.token))


# --- alg: none, HMAC with our public key, foreign curves ------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["empty", "original"])
def test_alg_none_is_malformed(anon, real, alg, signature):
    header, payload, sig = real.header, real.payload, real.signature
    token = f"{b64(dumps(header | {'alg': alg}))}.{b64(dumps(payload))}."
    if signature == "original":
        token += b64(sig)
    assert_code(anon, token, Code.MALFORMED)
    assert_code(anon, token.rstrip("."), Code.MALFORMED)


def _public_key_forms() -> dict[str, bytes]:
    key = our_public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = signing.public_key_pem(key).encode()
    return {
        "pem": pem,
        "pem-stripped": pem.strip(),
        "raw": raw,
        "hex": raw.hex().encode(),
        "jwk-x": signing.public_jwk(TEST_KID, key)["x"].encode(),
        "jwk-json": json.dumps(signing.public_jwk(TEST_KID, key)).encode(),
        "der": key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("form", ["pem", "pem-stripped", "raw", "hex", "jwk-x", "jwk-json", "der"])
def test_hmac_signed_with_our_public_key_is_malformed(anon, real, alg, form):
    """The classic algorithm confusion: the verifier never lets the token pick HMAC."""
    payload = real.payload
    token = hmac_token(alg, _public_key_forms()[form], payload)
    assert_code(anon, token, Code.MALFORMED)


def test_hmac_bytes_under_an_eddsa_header_are_a_bad_signature(anon, real):
    header, payload = real.header, real.payload
    signing_input = f"{b64(dumps(header))}.{b64(dumps(payload))}"
    for secret in _public_key_forms().values():
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert_code(anon, f"{signing_input}.{b64(mac)}", Code.BAD_SIGNATURE)


@pytest.mark.parametrize("kid", [TEST_KID, "attacker-01"])
def test_ed448_signed_token_is_refused(anon, real, kid):
    header, payload = real.header, real.payload
    token = sign_with(Ed448PrivateKey.generate(), header | {"kid": kid}, payload)
    assert len(unb64(token.split(".")[2])) == 114  # a genuine Ed448 signature
    assert_code(anon, token, Code.BAD_SIGNATURE if kid == TEST_KID else Code.UNKNOWN_KEY)


def test_another_ed25519_key_under_our_kid_is_a_bad_signature(anon, real):
    header, payload = real.header, real.payload
    assert_code(anon, sign_with(Ed25519PrivateKey.generate(), header, payload), Code.BAD_SIGNATURE)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "Ed25519", "EdDSA ", "eddsa", ""])
def test_any_other_alg_name_is_malformed_even_with_a_genuine_signature(anon, real, alg):
    header, payload, sig = real.header, real.payload, real.signature
    assert_code(anon, assemble(header | {"alg": alg}, payload, sig), Code.MALFORMED)


# --- Tampering ----------------------------------------------------------------------------


def test_the_genuine_token_is_valid(anon, real):
    """The baseline every forgery below is measured against."""
    license = real.license
    assert assert_code(anon, license.token, Code.VALID)["license_id"] == str(license.id)


def test_every_byte_of_the_signature_flipped_is_a_bad_signature(anon, real):
    license, sig = real.license, real.signature
    signing_input = license.token.rsplit(".", 1)[0]
    assert len(sig) == 64
    for index in range(len(sig)):
        for mask in (0x01, 0x80):
            tampered = bytearray(sig)
            tampered[index] ^= mask
            token = f"{signing_input}.{b64(bytes(tampered))}"
            assert offline_code(token) is Code.BAD_SIGNATURE, (index, mask)
            assert api_answer(anon, token)["code"] == "BAD_SIGNATURE", (index, mask)
    assert AuditLog.objects.filter(event_data__code="BAD_SIGNATURE").count() == 128


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda h: dict(reversed(list(h.items()))), id="reordered"),
        pytest.param(lambda h: {k: h[k] for k in ("alg", "kid")}, id="typ-dropped"),
    ],
)
def test_a_rewritten_header_is_a_bad_signature(anon, real, change):
    license, header, payload, sig = real.license, real.header, real.payload, real.signature
    new_header = change(dict(header))
    assert b64(dumps(new_header)) != license.token.split(".")[0]
    assert_code(anon, assemble(new_header, payload, sig), Code.BAD_SIGNATURE)


def test_a_header_pointing_at_another_of_our_keys_is_a_bad_signature(anon, real, keys_dir):
    header, payload, sig = real.header, real.payload, real.signature
    signing.write_keypair(keys_dir, "aegis-test-02")
    assert_code(anon, assemble(header | {"kid": "aegis-test-02"}, payload, sig), Code.BAD_SIGNATURE)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p.update(license_type="subscription", exp=4_000_000_000), id="type"),
        pytest.param(
            lambda p: p["module"].update(allowed_major_versions=["17", "18", "19"]), id="versions"
        ),
        pytest.param(lambda p: p["module"].update(technical_name="other_module"), id="module"),
        pytest.param(lambda p: p["customer"].update(id="CUST-999"), id="customer"),
        pytest.param(lambda p: p.update(jti=str(uuid.uuid4())), id="jti"),
        pytest.param(lambda p: p.update(iat=p["iat"] + 1), id="iat"),
    ],
)
def test_a_rewritten_payload_is_a_bad_signature(anon, real, change):
    license, header, payload, sig = real.license, real.header, real.payload, real.signature
    change(payload)
    token = assemble(header, payload, sig)
    assert token.split(".")[1] != license.token.split(".")[1]  # compact JSON: other bytes
    assert_code(anon, token, Code.BAD_SIGNATURE)


def test_the_same_claims_in_other_bytes_are_a_bad_signature(anon, real):
    """JSON spacing is part of what was signed."""
    header, payload, sig = real.header, real.payload, real.signature
    spaced = b64(json.dumps(payload, indent=1).encode())
    assert json.loads(unb64(spaced)) == payload
    assert_code(anon, f"{b64(dumps(header))}.{spaced}.{b64(sig)}", Code.BAD_SIGNATURE)


def test_payload_of_one_license_with_the_signature_of_another(anon, make_license):
    first, second = make_license(), make_license(allowed_major_versions=["16"])
    h1, p1, _ = first.token.split(".")
    _, _, s2 = second.token.split(".")
    assert_code(anon, f"{h1}.{p1}.{s2}", Code.BAD_SIGNATURE)
    assert_code(
        anon, f"{h1}.{second.token.split('.')[1]}.{first.token.split('.')[2]}", Code.BAD_SIGNATURE
    )


# --- Not a compact JWS ----------------------------------------------------------------------


_INVALID_UTF8 = b'{"jti": "\xff\xfe"}'
_DEEP_LIST = b"[" * 4000 + b"]" * 4000
_DEEP_HEADER = b'{"a":' * 3000 + b"1" + b"}" * 3000


def _structures(token: str) -> dict[str, str]:
    h, p, s = token.split(".")
    return {
        "two-segments": f"{h}.{p}",
        "four-segments": f"{token}.{s}",
        "five-segments-jwe-shape": f"{h}.{p}.{s}.{s}.{s}",
        "dots": "..",
        "one-dot": ".",
        "three-dots": "...",
        "empty-payload": f"{h}..{s}",
        "empty-signature": f"{h}.{p}.",
        "padded": f"{h}=.{p}==.{s}==",
        "standard-base64": token.replace("-", "+").replace("_", "/") + "+/",
        "trailing-newline": token + "\n",
        "leading-space": " " + token,
        "bearer-prefix": "Bearer " + token,
        "json-general": json.dumps(
            {"payload": p, "signatures": [{"protected": h, "signature": s}]}
        ),
        "json-flattened": json.dumps({"payload": p, "protected": h, "signature": s}),
        "over-16-kib": f"{h}.{p}{'A' * 16_400}.{s}",
        "header-not-json": f"{b64(b'alg=EdDSA')}.{p}.{s}",
        "header-a-list": f"{b64(b'[]')}.{p}.{s}",
        "payload-a-list": f"{h}.{b64(b'[1,2,3]')}.{s}",
        "payload-a-string": f"{h}.{b64(json.dumps(token).encode())}.{s}",
        "payload-invalid-utf8": f"{h}.{b64(_INVALID_UTF8)}.{s}",
        "payload-deeply-nested": f"{h}.{b64(_DEEP_LIST)}.{s}",
        "header-deeply-nested": f"{b64(_DEEP_HEADER)}.{p}.{s}",
        "non-ascii": f"{h}.{p}.{s[:-1]}é",
    }


@pytest.mark.parametrize("shape", list(_structures("a.b.c")))
def test_what_is_not_a_compact_jws_is_malformed(anon, real, shape):
    license = real.license
    token = _structures(license.token)[shape]
    assert_code(anon, token, Code.MALFORMED)


@pytest.mark.parametrize("token", ["", None, 123, ["a", "b", "c"], {"payload": "x"}])
def test_a_token_that_is_not_a_non_empty_string_is_a_400(anon, token):
    """A request that is not well formed is a 400 (CONTRACT §2), and not audited."""
    response = anon.post(
        URL, {"token": token, "module_name": MODULE, "odoo_version": "17"}, format="json"
    )
    assert assert_error(response, 400, "validation_error")["errors"].keys() == {"token"}
    assert signing.verifier().verify_token(token).code is Code.MALFORMED
    assert not AuditLog.objects.filter(event_type="license.validated").exists()


# --- Hostile kid values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kid", "code"),
    [
        ("../../etc/passwd", Code.UNKNOWN_KEY),
        ("/etc/passwd", Code.UNKNOWN_KEY),
        ("x' OR '1'='1", Code.UNKNOWN_KEY),
        ("aegis-test-01'; DROP TABLE licensing_license; --", Code.UNKNOWN_KEY),
        (f"{TEST_KID}\x00", Code.UNKNOWN_KEY),  # a C string would stop at the NUL
        (f"{TEST_KID}\x00.public.pem", Code.UNKNOWN_KEY),
        ("\x00", Code.UNKNOWN_KEY),
        (TEST_KID.upper(), Code.UNKNOWN_KEY),
        (f"{TEST_KID} ", Code.UNKNOWN_KEY),
        ("", Code.UNKNOWN_KEY),
        ("k" * 10_000, Code.UNKNOWN_KEY),
        (1, Code.MALFORMED),
        (0, Code.MALFORMED),
        (None, Code.MALFORMED),
        (True, Code.MALFORMED),
        ([TEST_KID], Code.MALFORMED),
        ({"kid": TEST_KID}, Code.MALFORMED),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_hostile_kid_values(anon, real, kid, code):
    """A kid is a name looked up among our keys, never a path, a query or anything else."""
    header, payload, sig = real.header, real.payload, real.signature
    attacker = Ed25519PrivateKey.generate()
    assert_code(anon, sign_with(attacker, header | {"kid": kid}, payload), code)
    # With the genuine signature too: only the kid changed, and it names none of our keys.
    assert_code(anon, assemble(header | {"kid": kid}, payload, sig), code)


def test_a_kid_cannot_reach_a_key_file_outside_the_keys_folder(anon, real, keys_dir, tmp_path):
    """A public key planted beside the keys folder, named by a relative kid, is not loaded."""
    header, payload = real.header, real.payload
    planted = tmp_path / "planted"
    signing.write_keypair(planted, "evil")
    attacker = serialization.load_pem_private_key(
        (planted / "evil.private.pem").read_bytes(), password=None
    )
    relative = f"../{planted.name}/evil"
    for kid in (relative, str(planted / "evil"), f"{relative}.public.pem"):
        assert_code(anon, sign_with(attacker, header | {"kid": kid}, payload), Code.UNKNOWN_KEY)
    missing = {k: v for k, v in header.items() if k != "kid"}
    assert_code(anon, sign_with(attacker, missing, payload), Code.UNKNOWN_KEY)


# --- Header parameters that point elsewhere: refused, and nothing is fetched ----------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):
        type(self).hits.append(self.path)
        body = json.dumps({"keys": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def trap_server():
    """A JWKS server on a loopback port: it answers, and records every request it gets."""
    _Recorder.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    server.shutdown()
    server.server_close()


def forbid_network(monkeypatch) -> list[object]:
    """Record and refuse every outbound connection or name lookup made from Python."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


@pytest.fixture
def no_network(monkeypatch):
    return forbid_network(monkeypatch)


def test_the_trap_server_and_the_guard_work(trap_server, monkeypatch):
    """The two detectors below are live: a fetch reaches the server; the guard records one."""
    url, hits = trap_server
    assert json.load(urllib.request.urlopen(f"{url}/probe", timeout=5)) == {"keys": []}
    assert hits == ["/probe"]
    attempts = forbid_network(monkeypatch)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/again", timeout=5)
    assert attempts and hits == ["/probe"]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda url, jwk: {"jku": f"{url}/jwks.json"}, id="jku"),
        pytest.param(lambda url, jwk: {"x5u": f"{url}/cert.pem"}, id="x5u"),
        pytest.param(lambda url, jwk: {"jwk": jwk}, id="jwk"),
        pytest.param(lambda url, jwk: {"x5c": ["MIIB"]}, id="x5c"),
        pytest.param(lambda url, jwk: {"x5t": "abc"}, id="x5t"),
        pytest.param(lambda url, jwk: {"crit": ["exp"], "exp": 1}, id="crit"),
        pytest.param(lambda url, jwk: {"crit": ["b64"], "b64": False}, id="crit-b64"),
        pytest.param(lambda url, jwk: {"crit": []}, id="crit-empty"),
        pytest.param(lambda url, jwk: {"zip": "DEF"}, id="zip"),
        pytest.param(lambda url, jwk: {"cty": "JWT"}, id="cty"),
    ],
)
def test_header_parameters_that_point_elsewhere_are_refused_offline(
    anon, real, trap_server, no_network, extra
):
    header, payload = real.header, real.payload
    url, hits = trap_server
    attacker = Ed25519PrivateKey.generate()
    jwk = signing.public_jwk("attacker", attacker.public_key())
    hostile = header | extra(url, jwk)
    # Signed by the attacker (whose key the header offers) and by us: refused either way.
    for token in (sign_with(attacker, hostile, payload), signing_with_our_key(hostile, payload)):
        assert_code(anon, token, Code.MALFORMED)
    assert hits == [] and no_network == []


def signing_with_our_key(header: dict, payload: dict) -> str:
    key = serialization.load_pem_private_key(settings.PRIVATE_KEY_PATH.read_bytes(), None)
    return sign_with(key, header, payload)


# --- typ ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typ", ["JWS", "jwt", "at+jwt", "aegis-rl+jwt", "application/jwt", "", 1, None, ["JWT"]]
)
def test_a_typ_other_than_jwt_is_malformed_even_when_we_signed_it(anon, real, typ):
    header, payload = real.header, real.payload
    assert_code(anon, signing_with_our_key(header | {"typ": typ}, payload), Code.MALFORMED)


def test_a_missing_typ_is_tolerated_when_we_signed_it(anon, real):
    """Some JOSE libraries omit `typ`; the signature still has to be ours."""
    header, payload = real.header, real.payload
    no_typ = {k: v for k, v in header.items() if k != "typ"}
    assert_code(anon, signing_with_our_key(no_typ, payload), Code.VALID)


def test_our_own_revocation_list_is_not_a_license(anon, real):
    listing = anon.get("/api/v1/licenses/revocations").json()
    assert_code(anon, listing["token"], Code.MALFORMED)


# --- Claims signed by our key that still must not pass --------------------------------------
# Only a holder of the private key can produce these; the verifier must still answer with a
# code rather than crash or accept a claim of the wrong type.


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param(
            {"license_type": "subscription", "exp": "4000000000"}, Code.MALFORMED, id="exp-string"
        ),
        pytest.param(
            {"license_type": "subscription", "exp": 4_000_000_000.0}, Code.MALFORMED, id="exp-float"
        ),
        pytest.param(
            {"license_type": "subscription", "exp": 4_000_000_000.5},
            Code.MALFORMED,
            id="exp-fraction",
        ),
        pytest.param({"license_type": "subscription", "exp": True}, Code.MALFORMED, id="exp-bool"),
        pytest.param({"license_type": "subscription", "exp": None}, Code.MALFORMED, id="exp-null"),
        pytest.param(
            {"license_type": "subscription", "exp": [4_000_000_000]}, Code.MALFORMED, id="exp-list"
        ),
        pytest.param({"license_type": "subscription"}, Code.MALFORMED, id="subscription-no-exp"),
        pytest.param({"license_type": "demo"}, Code.MALFORMED, id="demo-no-exp"),
        pytest.param({"exp": 4_000_000_000}, Code.MALFORMED, id="perpetual-with-exp"),
        pytest.param({"license_type": "subscription", "exp": 2**62}, Code.VALID, id="exp-huge"),
        pytest.param(
            {"license_type": "subscription", "exp": 10**30}, Code.VALID, id="exp-past-int64"
        ),
        pytest.param({"license_type": "subscription", "exp": -1}, Code.EXPIRED, id="exp-negative"),
        pytest.param({"license_type": "subscription", "exp": 0}, Code.EXPIRED, id="exp-zero"),
        pytest.param(
            {"license_type": "subscription", "exp": -(10**30)},
            Code.EXPIRED,
            id="exp-hugely-negative",
        ),
        pytest.param({"iss": settings.LICENSE_ISSUER[:-1]}, Code.WRONG_ISSUER, id="iss-prefix"),
        pytest.param({"iss": settings.LICENSE_ISSUER + "/"}, Code.WRONG_ISSUER, id="iss-slash"),
        pytest.param(
            {"iss": settings.LICENSE_ISSUER + ".evil.example"}, Code.WRONG_ISSUER, id="iss-suffix"
        ),
        pytest.param({"iss": settings.LICENSE_ISSUER + "\x00"}, Code.WRONG_ISSUER, id="iss-nul"),
        pytest.param({"iss": settings.LICENSE_ISSUER.upper()}, Code.WRONG_ISSUER, id="iss-case"),
        pytest.param({"iss": "\ud800"}, Code.WRONG_ISSUER, id="iss-lone-surrogate"),
        pytest.param({"iss": ""}, Code.WRONG_ISSUER, id="iss-empty"),
        pytest.param({"iss": [settings.LICENSE_ISSUER]}, Code.MALFORMED, id="iss-list"),
        pytest.param({"jti": "1' OR '1'='1"}, Code.MALFORMED, id="jti-sql"),
        pytest.param({"jti": 1}, Code.MALFORMED, id="jti-number"),
        pytest.param({"customer": "CUST-001"}, Code.MALFORMED, id="customer-string"),
        pytest.param(
            {"module": {"technical_name": MODULE, "allowed_major_versions": [17]}},
            Code.MALFORMED,
            id="versions-ints",
        ),
    ],
)
def test_claims_of_the_wrong_type_or_value(anon, real, change, code):
    license, header, payload = real.license, real.header, real.payload
    token = signing_with_our_key(header, payload | change)
    answer = assert_code(anon, token, code)
    if code is Code.VALID:  # a far-future exp reads as no known instant, never a 500
        assert answer["license_id"] == str(license.id)
        assert answer["expires_at"] is None or answer["expires_at"].startswith("9")


# --- Revocation is by jti, never by the token's spelling ------------------------------------


def _respell_signature(token: str) -> str:
    """The same token with the last base64url character of the signature changed in its
    unused low bits: another string that a lenient decoder reads as the very same bytes."""
    head, signature = token.rsplit(".", 1)
    assert len(signature) % 4 == 2  # 64 bytes → 86 characters, the last carries 4 spare bits
    index = B64_ALPHABET.index(signature[-1])
    respelt = signature[:-1] + B64_ALPHABET[index ^ 0x01]
    assert respelt != signature and unb64(respelt) == unb64(signature)
    return f"{head}.{respelt}"


def test_a_revoked_token_stays_revoked_however_it_is_spelt(anon, real):
    """Revocation is by jti; and a token has one spelling only, so no variant of a revoked
    token's string can pass for another, unrevoked, token."""
    license = real.license
    license_revoke(actor=ACTOR, license_id=license.id, reason="refund")
    offline = Verifier(
        signing.keyring().public_keys, settings.LICENSE_ISSUER, revoked={str(license.id)}
    )
    spellings = {
        license.token: Code.REVOKED,
        _respell_signature(license.token): Code.MALFORMED,
        license.token + "=": Code.MALFORMED,
        license.token + "==": Code.MALFORMED,
        license.token + "%3D%3D": Code.MALFORMED,
        license.token + ".": Code.MALFORMED,
        license.token + "\n": Code.MALFORMED,
        license.token.replace(".", "=.", 1): Code.MALFORMED,
    }
    for token, code in spellings.items():
        answer = api_answer(anon, token)
        assert answer["code"] == code.value and answer["valid"] is False, (token[-12:], answer)
        assert offline.verify(token, module_name=MODULE, odoo_version="17").code is code


def test_one_spelling_per_token_even_under_a_lenient_jose_library(anon, real, monkeypatch):
    """PyJWT < 2.14 decoded non-canonical base64url (spare bits set, padding); a client that
    vendors the verifier with such a PyJWT must still refuse a re-spelt token."""

    def lenient(segment, name):
        return jwt.utils.base64url_decode(segment.rstrip(b"="))

    monkeypatch.setattr(jwt.api_jws.PyJWS, "_decode_base64url_segment", staticmethod(lenient))
    respelt = _respell_signature(real.license.token)
    assert jwt.api_jws.PyJWS().decode_complete(respelt, options={"verify_signature": False})
    assert_code(anon, real.license.token, Code.VALID)
    assert_code(anon, respelt, Code.MALFORMED)
    head, payload, signature = real.license.token.split(".")
    assert_code(anon, f"{head}.{payload}.{signature}==", Code.MALFORMED)


# --- exp at its boundaries, with a frozen clock ---------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch):
    """`freeze(t)`: every verifier built from the key ring (the server's included) reads the
    time as `t` until the next call."""
    now: list[float] = [0.0]
    build = signing.KeyRing.verifier

    def verifier(ring, **kwargs):
        return build(ring, **{"clock": lambda: now[0], **kwargs})

    monkeypatch.setattr(signing.KeyRing, "verifier", verifier)
    signing.reset()

    def freeze(instant: float) -> None:
        now[0] = instant

    return freeze


@pytest.mark.parametrize("leeway", [0, 30])
def test_exp_boundaries_with_a_frozen_clock(anon, make_license, frozen_clock, settings, leeway):
    settings.VALIDATION_LEEWAY_SECONDS = leeway
    license = make_license(license_type="subscription", duration_days=1)
    exp = int(license.expires_at.timestamp())
    expected = {
        exp - leeway - 1: Code.VALID,
        exp - 1: Code.VALID,
        exp + leeway - 1: Code.VALID,
        exp + leeway - 0.001: Code.VALID,
        exp + leeway: Code.EXPIRED,  # RFC 7519: expired on or after exp
        exp + leeway + 1: Code.EXPIRED,
    }
    for instant, code in expected.items():
        frozen_clock(instant)
        answer = assert_code(anon, license.token, code)
        assert answer["license_id"] == str(license.id)  # the signature verified either way
        assert answer["expires_at"] == license.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")

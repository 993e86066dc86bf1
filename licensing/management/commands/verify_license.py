import json
import sys
from pathlib import Path

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from licensing import signing
from licensing.verification import Code, Result, RevocationListRejected, Verifier

NOT_VALID = 1
USAGE_ERROR = 2


class Command(BaseCommand):
    help = (
        "Verify a license token (or, with --lease, an instance's lease) offline, with the "
        "public keys of the keys folder only (no database, no private key). Prints the code "
        "and the claims. Without --module and --odoo-version only the token itself is "
        "checked (format, key, signature, issuer, expiry, and the revocation list when "
        "given). Exit 0: VALID; 1: any other code; 2: a usage error (bad arguments, "
        "unreadable input, refused revocation list)."
    )
    requires_system_checks = []
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("token", help="The token, or '-' to read it from stdin.")
        parser.add_argument(
            "--lease",
            action="store_true",
            help="The token is a lease (typ aegis-lease+jwt) from POST /licenses/activate: "
            "checked against the instance's own fingerprint (--db-uuid and --domain, or "
            "--fingerprint); a revocation list revokes it by its id or its license's.",
        )
        parser.add_argument("--module", help="The module the instance runs (technical name).")
        parser.add_argument("--odoo-version", help='The Odoo version, e.g. "17.0" or "17.0+e".')
        parser.add_argument("--db-uuid", help="The instance's database.uuid.")
        parser.add_argument("--domain", help="The instance's web.base.url or its host[:port].")
        parser.add_argument("--fingerprint", help="The instance fingerprint, sha256:<64 hex>.")
        parser.add_argument(
            "--revocation-list",
            type=Path,
            metavar="FILE",
            help="A revocation list: the JSON of /api/v1/licenses/revocations or its token.",
        )
        parser.add_argument(
            "--keys-dir", type=Path, help="Folder of <kid>.public.pem files. Default: KEYS_DIR."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **opts):
        usage_asked = opts["module"] is not None or opts["odoo_version"] is not None
        if usage_asked and (opts["module"] is None or opts["odoo_version"] is None):
            raise CommandError("--module and --odoo-version go together", returncode=USAGE_ERROR)
        instance = {
            "instance_db_uuid": opts["db_uuid"],
            "instance_domain": opts["domain"],
            "fingerprint": opts["fingerprint"],
        }
        if any(instance.values()) and not usage_asked:
            raise CommandError(
                "--db-uuid, --domain and --fingerprint need --module and --odoo-version",
                returncode=USAGE_ERROR,
            )
        token = self._read_token(opts["token"], opts.get("stdin") or sys.stdin)
        keys_dir = opts["keys_dir"] or Path(settings.KEYS_DIR)
        verifier = Verifier(
            signing.load_public_keys(keys_dir),
            settings.LICENSE_ISSUER,
            leeway=settings.VALIDATION_LEEWAY_SECONDS,
        )
        if opts["revocation_list"] is not None:
            verifier = self._with_revocation_list(verifier, opts["revocation_list"])

        if opts["lease"] and usage_asked:
            result = verifier.verify_lease(
                token, module_name=opts["module"], odoo_version=opts["odoo_version"], **instance
            )
        elif opts["lease"]:
            result = verifier.verify_lease_token(token)
        elif usage_asked:
            result = verifier.verify(
                token, module_name=opts["module"], odoo_version=opts["odoo_version"], **instance
            )
        else:
            result = verifier.verify_token(token)
            if result.valid and verifier.is_revoked(result.claims["jti"]):
                result = Result(Code.REVOKED, result.claims, result.header)

        self._print(result, token, verifier, usage_asked, opts["json"])
        if not result.valid:
            what = "lease" if opts["lease"] else "license"
            raise CommandError(f"the {what} is not valid: {result.code}", returncode=NOT_VALID)

    def _read_token(self, value: str, stdin) -> str:
        token = stdin.read().strip() if value == "-" else value.strip()
        if not token:
            raise CommandError("no token given", returncode=USAGE_ERROR)
        return token

    def _with_revocation_list(self, verifier: Verifier, path: Path) -> Verifier:
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            message = getattr(exc, "strerror", None) or "not a text file"
            raise CommandError(f"cannot read {path}: {message}", returncode=USAGE_ERROR) from None
        if text.startswith("{"):
            try:
                text = json.loads(text)["token"]
            except (ValueError, KeyError, TypeError):
                raise CommandError(
                    f"{path} is not a revocation list response (no token)", returncode=USAGE_ERROR
                ) from None
        try:
            return verifier.with_revocation_list(text)
        except RevocationListRejected as exc:
            raise CommandError(
                f"revocation list refused ({exc.reason}): {exc}", returncode=USAGE_ERROR
            ) from None

    def _print(self, result: Result, token: str, verifier: Verifier, usage_asked, as_json):
        kid = (result.header or {}).get("kid")
        if kid is None:
            try:  # only to help the operator: which key did the token name?
                kid = jwt.get_unverified_header(token).get("kid")
            except jwt.PyJWTError:
                kid = None
        revocation_list = verifier.revocation_list
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "valid": result.valid,
                        "code": result.code.value,
                        "error": result.error,
                        "kid": kid if isinstance(kid, str) else None,
                        "claims": result.claims,
                        "checks": "token+usage" if usage_asked else "token",
                        "revocation_list_seq": revocation_list.seq if revocation_list else None,
                    },
                    indent=2,
                )
            )
            return
        style = self.style.SUCCESS if result.valid else self.style.ERROR
        self.stdout.write(style(result.code.value))
        if result.error:
            self.stdout.write(result.error)
        if isinstance(kid, str):
            self.stdout.write(f"key id: {kid}")
        if not usage_asked:
            self.stdout.write(
                "checked: the token only (give --module and --odoo-version for usage)"
            )
        if revocation_list:
            self.stdout.write(f"revocation list: seq {revocation_list.seq}")
        if result.claims is not None:
            self.stdout.write(json.dumps(result.claims, indent=2))
        else:
            self.stdout.write("claims: not shown (the signature was not verified)")

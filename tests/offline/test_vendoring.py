"""The verifier is the file Odoo addons vendor: pure Python, and documented truthfully."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from licensing import signing, verification
from licensing.verification import compute_fingerprint, instance_domain

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "licensing" / "verification.py"
DOC = ROOT / "docs" / "odoo-client.md"


def test_the_verifier_imports_only_the_standard_library_pyjwt_and_cryptography():
    allowed = set(sys.stdlib_module_names) | {"jwt", "cryptography", "__future__"}
    imported = set()
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a vendored file cannot use relative imports"
            imported.add(node.module.split(".")[0])
    assert imported <= allowed, imported - allowed


def test_a_vendored_copy_runs_outside_the_project(tmp_path, make_license):
    license = make_license()
    vendored = tmp_path / "aegis_verification.py"
    vendored.write_text(SOURCE.read_text())
    key_pem = tmp_path / "key.pem"
    key_pem.write_text(signing.public_key_pem(signing.keyring().public_keys[license.key_id]))
    script = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import aegis_verification as a, pathlib\n"
        "assert 'django' not in sys.modules\n"
        f"keys = {{{license.key_id!r}: a.public_key_from_pem(pathlib.Path({str(key_pem)!r}).read_bytes())}}\n"
        "v = a.Verifier(keys, 'https://license.biz4a.com')\n"
        f"r = v.verify({license.token!r}, module_name='biz4a_payroll_drc', odoo_version='17.0')\n"
        "assert 'django' not in sys.modules\n"
        "print(r.code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "VALID"


def test_the_documented_fingerprint_example_is_right():
    doc = DOC.read_text()
    db_uuid = re.search(r"\| `database.uuid` \| `([^`]+)` \|", doc).group(1)
    url = re.search(r"\| `web.base.url` \| `([^`]+)` \|", doc).group(1)
    domain = re.search(r"\| `domain` \| `([^`]+)` \|", doc).group(1)
    fingerprint = re.search(r"\| fingerprint \| `([^`]+)` \|", doc).group(1)
    assert instance_domain(url) == domain
    assert compute_fingerprint(db_uuid, url) == fingerprint


def test_the_documented_codes_are_the_verifiers():
    doc = DOC.read_text()
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", doc, flags=re.MULTILINE))
    assert table == {code.value for code in verification.Code}
    reasons = {r.value for r in verification.ListRejection}
    assert all(f"`{reason}`" in doc for reason in reasons)

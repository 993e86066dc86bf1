"""`make loadtest`: a bounded load on loopback that must end with zero 5xx, throttles
answering 429 above their rates, and every audited request in the audit trail.

It starts gunicorn with production settings on a fresh PostgreSQL database (seeded with a
few customers and licenses) and Redis as the shared throttle cache, then runs 32 keep-alive
connections for 60 s (`--seconds`, `--connections`), each a client from its own loopback
address (127.0.0.x), mixing:

- validate with valid tokens, invalid ones (revoked, suspended, another module or version,
  a bound license without its instance, a tampered signature), garbage tokens (answered
  200 MALFORMED), bodies that are not JSON or have wrong types (400) and bodies over 64 KiB
  (413); some carry a forged X-Forwarded-For, which must change nothing;
- API reads with an admin key (licenses, customers, stats, one license);
- a key guesser sending wrong API keys.

The rates are set low (240/min per address, 120/min per key) so that even a short run on a
slow machine, whose fixed windows may be cut in two by the minute, goes past them.

Afterwards it checks, and prints one summary line:
- no 5xx and no broken connection;
- every rate limit held: per address, at most `--public-rate` validations were answered
  (not 429) in each fixed window, and 429s did come; likewise per key for the reads and
  per address for wrong keys (`--failed-key-rate`);
- a valid token was answered VALID, an invalid one never was;
- the `license.validated` audit rows equal the validate answers with status 200. Those
  are the audited requests: a 429 is refused before any database work, a 400 (not JSON,
  wrong types) or 413 (too large) before the request is understood, and none of them is
  a validation, so none is audited.

Exit status 0 when every check holds. Every process it starts is stopped, and the database
dropped (`--keep-db` keeps it).
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
MODULE = "biz4a_payroll_drc"
VALIDATE = "/api/v1/licenses/validate"

SEED = r"""
import json
from customers.services import customer_create, customer_update
from licensing.services import license_issue, license_revoke
from licensing.verification import compute_fingerprint

actor = "cli:loadtest"
active = customer_create(actor=actor, id="LOAD-001", name="Load Ltd", email="load@x.example")
suspended = customer_create(actor=actor, id="LOAD-002", name="Paused Ltd", email="p@x.example")
issue = lambda customer, **kw: license_issue(
    actor=actor, customer_id=customer.id, module_name=kw.pop("module", "biz4a_payroll_drc"),
    allowed_major_versions=kw.pop("versions", ["17", "18"]), **kw)
valid = [issue(active, license_type="perpetual").token for _ in range(12)]
valid += [issue(active, license_type="subscription", duration_days=365).token for _ in range(4)]
bound = issue(active, license_type="perpetual",
              instance_fingerprint=compute_fingerprint("load-db", "erp.load.example"))
revoked = issue(active, license_type="perpetual")
license_revoke(actor=actor, license_id=revoked.id, reason="load test")
paused = issue(suspended, license_type="perpetual")
customer_update(actor=actor, customer_id=suspended.id, is_active=False)
old = issue(active, license_type="perpetual", versions=["15"])
other = issue(active, license_type="perpetual", module="other_module")
print(json.dumps({
    "valid": valid, "bound": bound.token, "revoked": revoked.token, "suspended": paused.token,
    "old_version": old.token, "other_module": other.token, "license_id": str(revoked.id),
}))
"""


def log(message: str) -> None:
    print(f"[loadtest] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(sql: str) -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tA", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def manage(env: dict, *args: str) -> str:
    proc = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1]]


# --- The requests --------------------------------------------------------------------------


@dataclass
class Request:
    kind: str  # what it is, for the report and the expected answers
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    audited: bool = False  # a validate request: audited when answered 200


def tampered(token: str) -> str:
    head, signature = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[7] ^= 0x01
    return f"{head}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


class Mix:
    """Draws requests of each role; answers what each kind may be answered."""

    def __init__(self, seed: dict, api_key: str) -> None:
        self.seed = seed
        self.api_key = api_key
        json_headers = {"Content-Type": "application/json"}
        self.json_headers = json_headers

    def _validate(self, kind: str, fields: dict, **headers) -> Request:
        body = json.dumps({"module_name": MODULE, "odoo_version": "17.0", **fields}).encode()
        return Request(kind, "POST", VALIDATE, body, {**self.json_headers, **headers}, audited=True)

    def validate(self, rng: random.Random) -> Request:
        seed = self.seed
        spoof = {"X-Forwarded-For": f"10.{rng.randrange(256)}.0.1"} if rng.random() < 0.2 else {}
        roll = rng.random()
        if roll < 0.45:
            return self._validate("valid", {"token": rng.choice(seed["valid"])}, **spoof)
        if roll < 0.50:
            fields = {
                "token": seed["bound"],
                "instance_db_uuid": "load-db",
                "instance_domain": "https://erp.load.example",
            }
            return self._validate("valid", fields, **spoof)
        if roll < 0.70:
            token, extra = rng.choice(
                [
                    (seed["revoked"], {}),
                    (seed["suspended"], {}),
                    (seed["old_version"], {}),
                    (seed["other_module"], {}),
                    (seed["bound"], {}),
                    (seed["bound"], {"fingerprint": "sha256:" + "0" * 64}),
                    (tampered(rng.choice(seed["valid"])), {}),
                    (rng.choice(seed["valid"]), {"odoo_version": "16.0"}),
                ]
            )
            return self._validate("invalid", {"token": token, **extra}, **spoof)
        if roll < 0.82:
            token = rng.choice(
                [
                    secrets.token_urlsafe(rng.randrange(1, 400)),
                    "eyJhbGciOiJub25lIn0." + secrets.token_urlsafe(40) + ".",
                    rng.choice(seed["valid"]) + "==",
                    "..",
                ]
            )
            return self._validate("garbage-token", {"token": token}, **spoof)
        if roll < 0.92:
            body = rng.choice(
                [
                    b"\xff\xfe{not json",
                    b'{"token": 12345, "module_name": [], "odoo_version": null}',
                    b"[" * 100 + b"]" * 100,
                    b'{"token": "a\\u0000b", "module_name": "m", "odoo_version": "17"}',
                    b"",
                ]
            )
            return Request("bad-request", "POST", VALIDATE, body, {**self.json_headers, **spoof})
        body = json.dumps({"token": "x" * 70_000, "module_name": MODULE, "odoo_version": "17"})
        return Request("oversized", "POST", VALIDATE, body.encode(), dict(self.json_headers))

    def read(self, rng: random.Random) -> Request:
        path = rng.choice(
            [
                "/api/v1/licenses?page_size=20",
                f"/api/v1/licenses?module_name={MODULE}&status=active",
                "/api/v1/customers",
                "/api/v1/admin/stats",
                "/api/v1/admin/audit-logs?page_size=20",
                f"/api/v1/licenses/{self.seed['license_id']}",
            ]
        )
        return Request("read", "GET", path, None, {"X-API-Key": self.api_key})

    def guess(self, rng: random.Random) -> Request:
        prefix = self.api_key.partition(".")[0]
        key = rng.choice([f"{prefix}.{secrets.token_hex(16)}", secrets.token_hex(20), "x.y"])
        return Request("guess", "GET", "/api/v1/licenses", None, {"X-API-Key": key})


# What each kind may be answered; 5xx never.
EXPECTED = {
    "valid": {200, 429},
    "invalid": {200, 429},
    "garbage-token": {200, 429},
    "bad-request": {400, 429},
    "oversized": {413},
    "read": {200, 429},
    "guess": {401, 429},
}


# --- The clients -------------------------------------------------------------------------


@dataclass
class Answer:
    kind: str
    address: str
    status: int
    at: float
    code: str | None  # validate's `code` on a 200
    audited: bool


class Connection:
    """One keep-alive HTTP/1.1 connection from a given loopback address."""

    def __init__(self, port: int, address: str) -> None:
        self.port, self.address = port, address
        self.conn: http.client.HTTPConnection | None = None

    def send(self, request: Request) -> tuple[int, bytes]:
        for attempt in (1, 2):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=30, source_address=(self.address, 0)
                )
            try:
                self.conn.request(request.method, request.path, request.body, request.headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                # An idle keep-alive connection closed by the server before it read the
                # request: nothing was processed, so sending again is safe. On a fresh
                # connection it is a real failure.
                if fresh or attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_client(
    port: int, address: str, draw, deadline: float, seed: int, out: list, errors: list
) -> None:
    rng = random.Random(seed)
    connection = Connection(port, address)
    answers = []
    try:
        while time.time() < deadline:
            request = draw(rng)
            try:
                status, data = connection.send(request)
            except OSError as exc:
                errors.append(f"{request.kind} from {address}: {exc.__class__.__name__}: {exc}")
                continue
            code = None
            if request.audited and status == 200:
                code = json.loads(data)["code"]
            answers.append(
                Answer(request.kind, address, status, time.time(), code, request.audited)
            )
    finally:
        connection.close()
        out.extend(answers)


# --- The run -----------------------------------------------------------------------------


def windows(answers: list[Answer], period: int) -> int:
    if not answers:
        return 1
    first, last = min(a.at for a in answers), max(a.at for a in answers)
    return int(last // period) - int(first // period) + 1


def check(answers: list[Answer], errors: list[str], args, audit_rows: int) -> list[str]:
    problems = [f"transport error: {e}" for e in errors[:5]]
    if len(errors) > 5:
        problems.append(f"... and {len(errors) - 5} more transport errors")
    by_kind = collections.defaultdict(collections.Counter)
    for answer in answers:
        by_kind[answer.kind][answer.status] += 1
    for kind, statuses in by_kind.items():
        unexpected = {s: n for s, n in statuses.items() if s not in EXPECTED[kind]}
        if unexpected:
            problems.append(f"{kind}: unexpected statuses {unexpected}")
    server_errors = sum(1 for a in answers if a.status >= 500)
    if server_errors:
        problems.append(f"{server_errors} answers were 5xx")
    if any(a.kind == "valid" and a.code is not None and a.code != "VALID" for a in answers):
        problems.append("a valid token was not answered VALID")
    if any(a.kind != "valid" and a.code == "VALID" for a in answers):
        problems.append("an invalid token was answered VALID")

    # Rate limits: per address and fixed window, never more answers than the rate.
    limits = [
        ("validate", {"valid", "invalid", "garbage-token", "bad-request"}, args.public_rate),
        ("reads", {"read"}, args.key_rate),
        ("wrong keys", {"guess"}, args.failed_key_rate),
    ]
    for name, kinds, rate in limits:
        limit, period = parse_rate(rate)
        per_address = collections.defaultdict(list)
        for answer in answers:
            if answer.kind in kinds:
                per_address[answer.address].append(answer)
        throttled = 0
        for address, seen in per_address.items():
            accepted = sum(1 for a in seen if a.status != 429)
            allowed = limit * windows(seen, period)
            throttled += sum(1 for a in seen if a.status == 429)
            if accepted > allowed:
                problems.append(f"{name} from {address}: {accepted} answered, limit {allowed}")
        if per_address and not throttled:
            problems.append(f"{name}: no 429 at all; the load never reached {rate}")

    audited = sum(1 for a in answers if a.audited and a.status == 200)
    if audit_rows != audited:
        problems.append(f"audit rows {audit_rows} != audited validate answers {audited}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--public-rate", default="240/min", help="THROTTLE_RATE_PUBLIC")
    parser.add_argument("--key-rate", default="120/min", help="THROTTLE_RATE_API_KEY")
    parser.add_argument("--failed-key-rate", default="30/min", help="THROTTLE_RATE_FAILED_API_KEY")
    parser.add_argument("--db", default=f"aegis_load_{os.getpid()}")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if args.connections < 8:
        parser.error("--connections must be at least 8 (validators, readers and a guesser)")

    workdir = Path(tempfile.mkdtemp(prefix="aegis-load-"))
    keys = workdir / "keys"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "DJANGO"))},
        "ENVIRONMENT": "production",
        "DEBUG": "false",
        "API_SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db}",
        "CACHE_URL": f"redis://127.0.0.1:6379/14?key_prefix={args.db}",
        "RATE_LIMIT_ENABLED": "true",
        "THROTTLE_RATE_PUBLIC": args.public_rate,
        "THROTTLE_RATE_API_KEY": args.key_rate,
        "THROTTLE_RATE_FAILED_API_KEY": args.failed_key_rate,
        "KEYS_DIR": str(keys),
        "KEY_ID": "aegis-load",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_ACCESS_LOG": "",
        "GUNICORN_MAX_REQUESTS": "0",  # accounting stays exact: no worker recycles mid-run
        "WEB_CONCURRENCY": str(args.workers),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
    }
    (workdir / "metrics").mkdir()
    psql(f"DROP DATABASE IF EXISTS {args.db}")
    psql(f"CREATE DATABASE {args.db}")
    try:
        return run(args, env, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep_db:
            psql(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")


def start_server(env: dict, workdir: Path, workers: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    # The application follows the worker class (gunicorn.conf.py).
    cmd = [PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    if (ROOT / "gunicorn.conf.py").exists():
        cmd += ["-c", str(ROOT / "gunicorn.conf.py")]
    cmd += ["--workers", str(workers)]
    server_log = (workdir / "gunicorn.log").open("w")
    server = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server_log.close()  # the child holds its own descriptor
    for _ in range(150):
        if server.poll() is not None:
            break
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return server, port
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"the server did not start:\n{(workdir / 'gunicorn.log').read_text()[-3000:]}")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def count_audit_rows(db: str) -> int:
    out = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-tA",
            "-c",
            "SELECT count(*) FROM audit_auditlog WHERE event_type = 'license.validated'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def run(args, env: dict, workdir: Path) -> int:
    log(f"database {args.db}: migrate, signing key, seed")
    manage(env, "migrate", "--noinput")
    manage(env, "generate_keys")
    seed = json.loads(manage(env, "shell", "-c", SEED).strip().splitlines()[-1])
    api_key = manage(env, "create_api_key", "--name", "load", "--scope", "admin", "--quiet")
    redis = subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True)
    if b"PONG" not in redis.stdout:
        raise SystemExit("Redis is not answering on 127.0.0.1:6379 (the shared throttle cache)")

    server, port = start_server(env, workdir, args.workers)
    try:
        mix = Mix(seed, api_key.strip())
        readers, guessers = max(2, args.connections // 6), 1
        validators = args.connections - readers - guessers
        roles = (
            [(mix.validate, f"127.0.0.{11 + i % 8}") for i in range(validators)]
            + [(mix.read, "127.0.0.30") for _ in range(readers)]
            + [(mix.guess, "127.0.0.40") for _ in range(guessers)]
        )
        log(
            f"{len(roles)} connections for {args.seconds} s: {validators} validating from 8 "
            f"addresses, {readers} reading with one key, {guessers} guessing keys; rates "
            f"{args.public_rate} per address, {args.key_rate} per key, "
            f"{args.failed_key_rate} wrong keys per address"
        )
        answers: list[Answer] = []
        errors: list[str] = []
        started = time.time()
        deadline = started + args.seconds
        threads = [
            threading.Thread(
                target=run_client, args=(port, address, draw, deadline, n, answers, errors)
            )
            for n, (draw, address) in enumerate(roles)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.time() - started
    finally:
        stop_server(server)

    audit_rows = count_audit_rows(args.db)
    problems = check(answers, errors, args, audit_rows)
    statuses = collections.Counter(a.status for a in answers)
    kinds = collections.Counter(a.kind for a in answers)
    audited = sum(1 for a in answers if a.audited and a.status == 200)
    log("answers by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    log("answers by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    if problems:
        log("server log (tail):\n" + (workdir / "gunicorn.log").read_text()[-3000:])
    server_errors = sum(n for s, n in statuses.items() if s >= 500)
    print(
        f"loadtest: {len(answers)} requests in {elapsed:.0f} s ({len(answers) / elapsed:.0f}/s) "
        f"over {len(roles)} connections, 5xx = {server_errors}, 429 = {statuses[429]}, "
        f"audit rows = {audit_rows} = audited requests {audited} "
        f"(validate answered 200; 400/413/429 are not validations) - "
        + ("OK" if not problems else "FAILED"),
        flush=True,
    )
    for problem in problems:
        print(f"  FAILED: {problem}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

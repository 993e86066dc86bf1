"""`make bench`: the server under load on this machine, ratios first.

Starts the server with production settings on PostgreSQL under gunicorn, drives it with wrk
on loopback and prints one table (also written to bench/results/latest.json):

- validate requests/s and p50/p99 at 32 connections, the in-process ceiling measured in the
  same run (PyJWT EdDSA verifications/s on one core × cores) and their ratio;
- activate: heartbeats of 2,000 activated instances (each activated once during set-up) at
  32 connections, requests/s, p50/p99 and CPU ms per heartbeat (app / PostgreSQL);
- issue requests/s; license list and audit-log list p50/p99 on page 1 and at depth, with
  4 clients and, for the main pages, 1 client; stats.

The benchmark database (`aegis_bench`, 1 million licenses and 10 million audit rows by
default) is seeded once and kept between runs, so a run measures in well under five minutes;
`--reseed` rebuilds it. Every process the harness starts is stopped when it ends.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
RESULTS = ROOT / "bench" / "results"


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tA", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def manage(env: dict, *args: str, capture: bool = True) -> str:
    proc = subprocess.run(
        [PY, "manage.py", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=capture,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout if capture else ""


def ceiling_per_core(seconds: float = 3.0) -> float:
    """PyJWT EdDSA verifications per second on one core, measured now."""
    code = r"""
import time, uuid, jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.generate()
claims = {"jti": str(uuid.uuid4()), "iss": "https://license.biz4a.com", "iat": 1,
          "customer": {"id": "C", "name": "N"},
          "module": {"technical_name": "m", "allowed_major_versions": ["17"]},
          "license_type": "perpetual"}
token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k"})
pub = key.public_key()
n, start = 0, time.perf_counter()
while time.perf_counter() - start < SECONDS:
    for _ in range(200):
        jwt.decode(token, pub, algorithms=["EdDSA"])
    n += 200
print(n / (time.perf_counter() - start))
""".replace("SECONDS", repr(seconds))
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def wrk(
    url: str, script: str, *, connections: int, seconds: int, env: dict, threads: int = 2
) -> dict:
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        f"bench/{script}",
        url,
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
    data = json.loads(line)
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["p50_ms"] = data["p50_us"] / 1000
    data["p99_ms"] = data["p99_us"] / 1000
    data["errors"] = sum(
        data[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    )
    return data


def worker_rss_kb(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    pids = children.read_text().split() if children.exists() else []
    sizes = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]))
    return sizes


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int | str, *, children: bool = False) -> float:
    """CPU seconds (user + system) of a process, plus its reaped children when asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (recycled workers)
    return ticks / CLK_TCK


def postgres_pids(db: str) -> list[str]:
    """The PostgreSQL backends serving `db` and the server's own writers (WAL, checkpoints):
    other databases on the machine are not counted."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and (
            f" {db} " in title or title.endswith(("walwriter", "checkpointer", "background writer"))
        ):
            pids.append(cmdline.parent.name)
    return pids


def cpu_split(master_pid: int, pg_pids: list[str]) -> dict[str, float]:
    """CPU seconds used so far by the server (master, workers, recycled workers) and by
    the given PostgreSQL processes, plus the PostgreSQL processes that have exited since
    (parallel query workers, closed connections: reaped by the postmaster)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    workers = children.read_text().split() if children.exists() else []
    server = _proc_cpu(master_pid, children=True) + sum(_proc_cpu(pid) for pid in workers)
    postgres = sum(_proc_cpu(pid) for pid in pg_pids)
    postmaster = _parent(pg_pids[0]) if pg_pids else None
    if postmaster:
        postgres += _proc_cpu(postmaster, children=True) - _proc_cpu(postmaster)
    return {"server": server, "postgres": postgres}


def _parent(pid: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None


def audit_cursor_at_depth(env: dict, fraction: float) -> str:
    """A cursor pointing `fraction` of the way down the audit log (newest first)."""
    db = env["BENCH_DB"]
    total = int(psql("SELECT max(id) FROM audit_auditlog", db) or 0)
    target = int(
        psql(f"SELECT max(id) FROM audit_auditlog WHERE id <= {int(total * (1 - fraction))}", db)
        or 0
    )
    created = psql(f"SELECT created_at FROM audit_auditlog WHERE id = {target}", db)
    # DRF's cursor: base64 of a querystring with the position of the last item seen.
    position = urllib.parse.urlencode({"p": created})
    return base64.b64encode(position.encode()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--licenses", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=20, help="duration of the validate run")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections of the validate run"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py)"
    )
    parser.add_argument(
        "--worker-class",
        default=None,
        help="gthread, sync or a worker class path (default: gunicorn.conf.py's)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads per worker for Django (default: conf)"
    )
    parser.add_argument("--reseed", action="store_true", help="rebuild the benchmark database")
    parser.add_argument("--db", default="aegis_bench")
    parser.add_argument(
        "--only",
        choices=["validate", "activate"],
        default=None,
        help="run only this scenario (quick comparisons); the full table needs every run",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the server, e.g. VALIDATION_CACHE_SIZE=0 (repeatable)",
    )
    args = parser.parse_args()

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-"))
    keys_dir = ROOT / "bench" / ".keys"  # kept with the database: seeded tokens are signed by it
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "DJANGO"))},
        "ENVIRONMENT": "production",
        "DEBUG": "false",
        "API_SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db}",
        "CACHE_URL": "redis://127.0.0.1:6379/15",
        "RATE_LIMIT_ENABLED": "false",
        "KEYS_DIR": str(keys_dir),
        "KEY_ID": "aegis-bench",
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "BENCH_DB": args.db,
    }
    for assignment in args.set:
        name, sep, value = assignment.partition("=")
        if not sep:
            raise SystemExit(f"--set wants NAME=VALUE, not {assignment!r}")
        env[name] = value
    (workdir / "prom").mkdir()

    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{args.db}'") == "1"
    # Seeded means the loader finished (it writes its audit row last, in its transaction).
    seeded = (
        exists
        and psql("SELECT to_regclass('audit_auditlog') IS NOT NULL", args.db) == "t"
        and psql(
            "SELECT EXISTS (SELECT 1 FROM audit_auditlog WHERE event_type = 'demo_data.seeded')",
            args.db,
        )
        == "t"
    )
    if args.reseed or not seeded or not (keys_dir / "aegis-bench.private.pem").exists():
        log(
            f"creating {args.db} and seeding {args.licenses:,} licenses, {args.audit:,} audit rows (once)"
        )
        psql(f"DROP DATABASE IF EXISTS {args.db}")
        psql(f"CREATE DATABASE {args.db}")
        shutil.rmtree(keys_dir, ignore_errors=True)
        manage(env, "migrate", "--noinput")
        manage(env, "generate_keys")
        seed_start = time.monotonic()
        # The loader refuses ENVIRONMENT=production (it writes straight into the tables);
        # the database and the keys are the same, only the guard differs.
        manage(
            env | {"ENVIRONMENT": "development"},
            "seed_demo_data",
            "--customers",
            str(args.customers),
            "--licenses",
            str(args.licenses),
            "--audit",
            str(args.audit),
            capture=False,
        )
        log(f"seeded in {time.monotonic() - seed_start:.0f} s")
        # What the rollup cron does in production: fold the seeded validations once, so the
        # statistics measure the steady state rather than a ten-million-row catch-up.
        manage(env, "rollup_validations", capture=False)
        # What autovacuum does to a table after bulk inserts: statistics for the planner and
        # the visibility map that lets index-only scans skip the heap.
        for table in ("customers_customer", "licensing_license", "audit_auditlog"):
            psql(f"VACUUM (ANALYZE) {table}", args.db)
        log(f"seeded and folded in {time.monotonic() - seed_start:.0f} s")
    else:
        manage(env, "migrate", "--noinput")
    api_key = manage(
        env, "create_api_key", "--name", "bench", "--scope", "admin", "--quiet"
    ).strip()

    tokens_file = workdir / "tokens.txt"
    rows = psql(
        "SELECT l.token || ' ' || l.module_name FROM licensing_license l JOIN customers_customer c "
        "ON c.id = l.customer_id WHERE l.status = 'active' AND c.is_active "
        "AND (l.expires_at IS NULL OR l.expires_at > now()) AND l.allowed_major_versions ? '17' LIMIT 2000",
        args.db,
    )
    tokens_file.write_text(rows + "\n")
    env |= {"BENCH_TOKENS": str(tokens_file), "BENCH_API_KEY": api_key}

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The application follows the worker class (gunicorn.conf.py).
    cmd = [PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    if (ROOT / "gunicorn.conf.py").exists():
        cmd += ["-c", str(ROOT / "gunicorn.conf.py")]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    # Through the environment: gunicorn.conf.py picks the application by the worker class.
    if args.worker_class:
        env["GUNICORN_WORKER_CLASS"] = args.worker_class
    if args.threads or args.worker_class == "sync":
        # gunicorn silently runs gthread when a sync worker is given more than one thread.
        env["GUNICORN_THREADS"] = str(args.threads or 1)
    server_log = (workdir / "gunicorn.log").open("w")
    server = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=server_log, start_new_session=True
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"server did not start; see {workdir / 'gunicorn.log'}")

        results: dict = {"machine": {"cores": os.cpu_count()}}
        if args.only in (None, "validate"):
            run_validate(results, base, env, server.pid, args)
        if args.only in (None, "activate"):
            run_activate(results, base, env, server.pid, args, workdir)
        if args.only is None:
            run_other_scenarios(results, base, env, server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        server_log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, started, args.only)


def cpu_per_request(before: dict, after: dict, wrk_before, wrk_after, done: int) -> dict:
    """CPU ms per request: the server, PostgreSQL and wrk itself."""
    done = max(done, 1)
    return {name: (after[name] - before[name]) * 1000 / done for name in after} | {
        "wrk": (wrk_after.ru_utime + wrk_after.ru_stime - wrk_before.ru_utime - wrk_before.ru_stime)
        * 1000
        / done
    }


def run_validate(results: dict, base: str, env: dict, server_pid: int, args) -> None:
    log("measuring the in-process ceiling (PyJWT EdDSA verify, one core)")
    per_core = ceiling_per_core()
    results["ceiling_per_core"] = per_core
    results["ceiling"] = per_core * (os.cpu_count() or 1)

    # Long enough for every worker to meet every token once: the run measures the steady
    # state (each worker process keeps its own verified-token cache).
    log("warming up")
    url = f"{base}/api/v1/licenses/validate"
    wrk(url, "validate.lua", connections=args.connections, seconds=8, env=env)
    rss_before = worker_rss_kb(server_pid)
    # Backends opened during the warm-up (persistent connections) serve the run.
    pg_pids = postgres_pids(args.db)
    cpu_before = cpu_split(server_pid, pg_pids)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    log(f"validate: {args.connections} connections, {args.seconds} s")
    results["validate"] = wrk(
        url, "validate.lua", connections=args.connections, seconds=args.seconds, env=env
    )
    results["validate"]["connections"] = args.connections
    cpu_after = cpu_split(server_pid, pg_pids)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_after = worker_rss_kb(server_pid)
    results["worker_rss_kb"] = {"before": rss_before, "after": rss_after}
    # Where the two cores went during the validate run: CPU ms per validation.
    results["validate_cpu_ms"] = cpu_per_request(
        cpu_before, cpu_after, wrk_before, wrk_after, results["validate"]["requests"]
    )


# The activate scenario: this many instances, one per license, checking in.
ACTIVATE_INSTANCES = 2000


def run_activate(results: dict, base: str, env: dict, server_pid: int, args, workdir) -> None:
    """Heartbeats: every instance is activated once first (a seat taken, or kept from an
    earlier run), then wrk sends their check-ins in rotation, as deployed instances do."""
    lines = [ln.split() for ln in Path(env["BENCH_TOKENS"]).read_text().splitlines() if ln]
    instances = [
        (token, module, f"bench-db-{i:05d}", f"erp{i:05d}.bench.example")
        for i, (token, module) in enumerate(lines[:ACTIVATE_INSTANCES])
    ]
    instances_file = workdir / "instances.txt"
    instances_file.write_text("".join(" ".join(row) + "\n" for row in instances))
    env["BENCH_INSTANCES"] = str(instances_file)
    url = f"{base}/api/v1/licenses/activate"

    def activate_once(row) -> str:
        token, module, db_uuid, domain = row
        body = {
            "token": token,
            "module_name": module,
            "odoo_version": "17.0",
            "instance_db_uuid": db_uuid,
            "instance_domain": domain,
        }
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["code"]

    log(f"activate: set-up, {len(instances):,} instances activated once")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(activate_once, instances))
    results["activate_setup"] = {
        "instances": len(instances),
        "valid": codes.count("VALID"),
        "seconds": time.monotonic() - started,
    }
    if codes.count("VALID") != len(instances):
        raise SystemExit(f"activate set-up: not every instance got a seat: {set(codes)}")

    log("activate: warming up")
    wrk(url, "activate.lua", connections=args.connections, seconds=5, env=env)
    pg_pids = postgres_pids(args.db)
    cpu_before = cpu_split(server_pid, pg_pids)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    log(f"activate (heartbeats): {args.connections} connections, {args.seconds} s")
    run = wrk(url, "activate.lua", connections=args.connections, seconds=args.seconds, env=env)
    run["connections"] = args.connections
    results["activate"] = run
    results["activate_cpu_ms"] = cpu_per_request(
        cpu_before,
        cpu_split(server_pid, pg_pids),
        wrk_before,
        resource.getrusage(resource.RUSAGE_CHILDREN),
        run["requests"],
    )


# Read scenarios also measured with a single client: every license list and the audit log.
SINGLE_CLIENT = (
    "licenses page 1",
    "licenses filtered",
    "licenses by customer",
    "licenses search",
    "licenses page 1000",
    "audit page 1",
    "audit at depth 90%",
)


def run_other_scenarios(results: dict, base: str, env: dict, server_pid: int) -> None:
    log("issue: 8 connections, 10 s")
    results["issue"] = wrk(
        f"{base}/api/v1/licenses", "issue.lua", connections=8, seconds=10, env=env
    )
    depth = urllib.parse.quote(audit_cursor_at_depth(env, 0.9))
    gets = {
        "licenses page 1": "/api/v1/licenses?page_size=50",
        "licenses filtered": "/api/v1/licenses?page_size=50&module_name=biz4a_payroll_drc&status=active&license_type=subscription",
        "licenses by customer": "/api/v1/licenses?page_size=50&customer_id=DEMO-0000042",
        "licenses search": "/api/v1/licenses?page_size=50&search=DEMO-0000042",
        "licenses page 1000": "/api/v1/licenses?page_size=50&page=1000",
        "audit page 1": "/api/v1/admin/audit-logs?page_size=50",
        "audit at depth 90%": f"/api/v1/admin/audit-logs?page_size=50&cursor={depth}",
        "audit by type": "/api/v1/admin/audit-logs?page_size=50&event_type=license.revoked",
        "stats (1 conn)": "/api/v1/admin/stats",
    }
    results["reads"] = {}
    for name, path in gets.items():
        if name.startswith("stats"):
            # The rollup cron (every minute in production, docs/deployment-runbook.md) folds
            # the validations the runs above wrote; timed here, as it is the cost a statistics
            # request pays when the cron has fallen behind.
            start = time.monotonic()
            out = manage(env, "rollup_validations").strip()
            results["rollup_cron_s"] = time.monotonic() - start
            log(f"rollup_validations, as the cron: {out} ({results['rollup_cron_s']:.1f} s)")
        # Lists are read by several clients at once; the statistics by one dashboard at a
        # time (four at once measure how PostgreSQL shares two cores, not the latency).
        connections = 1 if name.startswith("stats") else 4
        # A short warm-up, as for validate: the run measures the steady state, not the
        # first request of a worker thread (a new connection, cold plans).
        wrk(f"{base}{path}", "get.lua", connections=connections, seconds=2, env=env)
        log(f"{name}: {connections} connections, 5 s")
        results["reads"][name] = measured_read(base + path, connections, env, server_pid)
        if name in SINGLE_CLIENT:
            # The same page for one client alone: latency without queueing behind others.
            log(f"{name}: 1 connection, 5 s")
            results["reads"][f"{name} (1 conn)"] = measured_read(base + path, 1, env, server_pid)


def measured_read(url: str, connections: int, env: dict, server_pid: int) -> dict:
    """One 5 s wrk run of GET `url`, with the CPU milliseconds each request cost the server
    and PostgreSQL: latency under load moves with whatever else the machine runs, CPU per
    request much less."""
    before = cpu_split(server_pid, postgres_pids(env["BENCH_DB"]))
    run = wrk(url, "get.lua", connections=connections, seconds=5, env=env)
    # Backends opened since count whole; those gone since, through the postmaster.
    after = cpu_split(server_pid, postgres_pids(env["BENCH_DB"]))
    done = max(run["requests"], 1)
    run["cpu_ms"] = {name: (after[name] - before[name]) * 1000 / done for name in after}
    return run


def report(results: dict, started: float, only: str | None = None) -> None:
    v = results.get("validate")
    if v is not None:
        results["ratio_validate_to_ceiling"] = v["rps"] / results["ceiling"]
    results["elapsed_s"] = time.monotonic() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    # A run of the activate scenario alone leaves the last full run's figures in place.
    saved = RESULTS / (f"latest-{only}.json" if only not in (None, "validate") else "latest.json")
    saved.write_text(json.dumps(results, indent=2))

    runs = [
        *([v] if v is not None else []),
        *([results["activate"]] if "activate" in results else []),
        *([results["issue"]] if "issue" in results else []),
        *results.get("reads", {}).values(),
    ]
    errors = sum(r["errors"] + r["non_2xx_3xx"] for r in runs)
    print()
    print(f"AEGIS benchmark — {os.cpu_count()} cores, gunicorn + PostgreSQL, wrk on loopback")
    print(f"{'figure':<42}{'value':>14}")
    print("-" * 56)
    if v is not None:
        cpu = results["validate_cpu_ms"]
        print(f"{'validate / ceiling':<42}{results['ratio_validate_to_ceiling']:>14.2f}")
        label = f"validate req/s ({v['connections']} conn)"
        print(f"{label:<42}{v['rps']:>14,.0f}")
        print(f"{'validate p50 / p99 ms':<42}{v['p50_ms']:>7.1f} /{v['p99_ms']:>5.1f}")
        print(f"{'ceiling: EdDSA verify/s × cores':<42}{results['ceiling']:>14,.0f}")
        print(
            f"{'validate CPU ms: app / pg / wrk':<42}"
            f"{cpu['server']:>5.2f} /{cpu['postgres']:>4.2f} /{cpu['wrk']:>4.2f}"
        )
    if "activate" in results:
        a, cpu = results["activate"], results["activate_cpu_ms"]
        label = f"activate (heartbeat) req/s ({a['connections']} conn)"
        print(f"{label:<42}{a['rps']:>14,.0f}")
        print(f"{'activate p50 / p99 ms':<42}{a['p50_ms']:>7.1f} /{a['p99_ms']:>5.1f}")
        # PostgreSQL's share reads n/a when a backend it counted ended during the run.
        pg = f"{cpu['postgres']:>4.2f}" if cpu["postgres"] >= 0 else " n/a"
        print(
            f"{'activate CPU ms: app / pg / wrk':<42}"
            f"{cpu['server']:>5.2f} /{pg} /{cpu['wrk']:>4.2f}"
        )
    if "issue" in results:
        print(f"{'issue req/s (8 conn)':<42}{results['issue']['rps']:>14,.0f}")
    if results.get("reads"):
        print("(lists: 4 clients without pause unless marked 1 conn; stats: 1 client;")
        print(" last column: CPU ms per request, server + PostgreSQL)")
    for name, r in results.get("reads", {}).items():
        cpu_ms = r.get("cpu_ms", {})
        print(
            f"{name + ' p50 / p99 ms':<42}{r['p50_ms']:>7.1f} /{r['p99_ms']:>5.1f}"
            f"  {cpu_ms.get('server', 0):>5.1f} +{cpu_ms.get('postgres', 0):>5.1f}"
        )
    if "rollup_cron_s" in results:
        print(f"{'rollup cron run before stats s':<42}{results['rollup_cron_s']:>14.1f}")
    print(f"{'errors and non-2xx (all runs)':<42}{errors:>14}")
    if "worker_rss_kb" in results:
        rss = results["worker_rss_kb"]
        print(
            f"{'worker RSS before → after (MB)':<42}"
            f"{sum(rss['before']) / 1024:>6.0f} → {sum(rss['after']) / 1024:.0f}"
        )
    print(f"{'elapsed s':<42}{results['elapsed_s']:>14.0f}")
    print(f"results: {saved}")


if __name__ == "__main__":
    main()

"""Real server processes for the operations tests: the deployment entrypoint (gunicorn) in a
child process, plain HTTP to it, and a TCP relay that stands between the server and
PostgreSQL so a test can cut the database off and bring it back."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.utils.datastructures import CaseInsensitiveMapping

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "Vq8-zL3wN_r5Tb0yXe7uKc2mHd9sFj4gPa6iQo1tZn-WbRvU_lMkYxCs"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer to check, not to follow


_OPENER = urllib.request.build_opener(_NoRedirect)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**overrides: str) -> dict[str, str]:
    """The parent's environment without settings a test must choose itself."""
    dropped = (
        "DATABASE_URL",
        "DATABASE_REPLICA_URL",
        "ENVIRONMENT",
        "DEBUG",
        "API_SECRET_KEY",
        "ALLOWED_HOSTS",
        "PROMETHEUS_MULTIPROC_DIR",
        "WEB_CONCURRENCY",
        "LOG_FORMAT",
    )
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(overrides)
    return env


def _headers(message) -> CaseInsensitiveMapping:
    """Header names are case-insensitive (the ASGI server sends them in lower case)."""
    return CaseInsensitiveMapping(dict(message.items()))


@dataclass
class Response:
    status: int
    headers: CaseInsensitiveMapping
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Server:
    """A process started from the project root whose output is collected line by line."""

    args: list[str]
    env: dict[str, str]
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    _lines: queue.Queue = field(default_factory=queue.Queue)
    _pumps: list[threading.Thread] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    def start(self, ready_marker: str = "Listening at", timeout: float = 90) -> Server:
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            pump = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            pump.start()
            self._pumps.append(pump)
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.stop()
                raise AssertionError(f"server not ready in {timeout}s:\n{self.output()}") from None
            if line is None and self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}):\n{self.output()}")
            if line and ready_marker in line:
                return self

    def _pump(self, stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout[-60:], "--- stderr", *self.stderr[-60:]])

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # gunicorn (the entrypoint execs it) stops gracefully on SIGTERM.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pump in self._pumps:  # all output read: the streams are at their end
            pump.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def request(
        self, method: str, path: str, body=None, headers: dict[str, str] | None = None
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with _OPENER.open(request, timeout=30) as response:
                return Response(response.status, _headers(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, _headers(error.headers), error.read())


def manage(env: dict[str, str], *args: str) -> str:
    """Run a management command through the entrypoint, in the server's environment."""
    proc = subprocess.run(
        ["deploy/entrypoint.sh", "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


class TcpRelay:
    """Forwards 127.0.0.1:<port> to a target port while open; refuses connections (like a
    stopped database) while closed, and cuts the connections it carried when closing."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

"""A pool of AppWorld environment servers (one world per process), talked to over HTTP on loopback.

AppWorld holds one world per process (a second `AppWorld(...)` silently takes the first over),
must run on its main thread and freezes the process clock, so every concurrent episode gets
a server process of its own. Model-generated code runs only inside those processes.

    with ServerPool(PoolConfig(size=2)) as pool:      # starts and prewarms both servers
        server = pool.acquire()                        # blocks until one is idle
        server.post("initialize", {...})
        pool.release(server)                           # or release(server, broken=True)

A server that dies, answers with an error, or does not answer in time raises `InfraError`
(from `EnvServer.post`); the episode then releases it as broken and the pool kills its whole
process group and starts a fresh, prewarmed one in the background. Each rollout gets its own
experiment name (`new_experiment_name`), so concurrent rollouts of one task never share
AppWorld's output folders; those folders are deleted after scoring unless `keep_outputs`.

HTTP API of `appworld.serve.environment` (AppWorld 0.1.3.post1), all POST with JSON bodies:
initialize {task_id, experiment_name, timeout_seconds, ...} -> {output: {task_id, instruction,
supervisor{first_name,last_name,email,phone_number}, datetime}}; execute {task_id, code} ->
{output: str}; task_completed {task_id} -> {output: bool}; evaluate {task_id, suppress_errors,
report} -> {output: {success, difficulty, num_tests, passes, failures}}; close {task_id}.
Its errors come back as HTTP 500 (its HTTPException calls are malformed), never as 4xx.
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.appworld.install import appworld_env, require_data, require_venv, root_dir
from harness.records import InfraError

SERVER_MAIN = Path(__file__).with_name("server_main.py")


@dataclass
class PoolConfig:
    """Pool settings. Timeouts in seconds.

    execution_timeout_s is AppWorld's own limit on one code execution (it answers "Execution
    failed ... timed out", a normal tool result); a server that stays silent for
    execution_grace_s longer than that is declared hung (an infrastructure error).
    """

    size: int = 1
    root: Path | None = None  # AppWorld data root; default harness.appworld.install.root_dir()
    venv: Path | None = None  # AppWorld venv; default harness.appworld.install.venv_dir()
    prewarm_task_id: str | None = None  # default: first task of the first split on disk
    start_timeout_s: float = 120.0
    request_timeout_s: float = 120.0
    execution_timeout_s: int = 100
    execution_grace_s: float = 30.0
    acquire_timeout_s: float = 900.0
    keep_outputs: bool = False
    experiment_prefix: str = "sgcd"
    max_start_attempts: int = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class ServerTimes:
    """Seconds from spawn to answering HTTP, and of the first (cold) world initialisation."""

    start_s: float = float("nan")
    warm_init_s: float = float("nan")


@dataclass
class EnvServer:
    """One `appworld.serve.environment` process on 127.0.0.1:port, in its own process group."""

    index: int
    python: Path
    root: Path
    venv: Path | None
    log_dir: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    client: httpx.Client | None = None
    times: ServerTimes = field(default_factory=ServerTimes)
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"server-{self.index}.log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float, attempts: int = 3) -> None:
        """Spawn the process and wait (bounded) until it answers; retry on another port."""
        last = ""
        for _ in range(attempts):
            self.kill()
            self.port = _free_port()
            t0 = time.perf_counter()
            with open(self.log_path, "ab") as log:
                log.write(f"\n--- start on port {self.port} ---\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [str(self.python), "-I", str(SERVER_MAIN), "--port", str(self.port)],
                    cwd=self.root,
                    env=appworld_env(self.root, self.venv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed as a whole
                )
            self.client = httpx.Client(base_url=self.url, trust_env=False, timeout=10.0)
            deadline = t0 + timeout_s
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    last = f"exited with code {self.proc.returncode}"
                    break
                try:
                    if self.client.get("/", timeout=2.0).status_code == 200:
                        self.times.start_s = time.perf_counter() - t0
                        self.starts += 1
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                last = f"did not answer within {timeout_s:.0f} s"
        self.kill()
        raise InfraError(
            f"AppWorld server {self.index} {last} ({attempts} attempts); log {self.log_path}:\n"
            + _tail(self.log_path)
        )

    def post(self, method: str, payload: dict[str, Any], timeout_s: float) -> Any:
        """POST /method and return its `output`; any failure is an InfraError."""
        if self.client is None or not self.alive():
            raise InfraError(f"AppWorld server {self.index} is not running ({self._exit_text()})")
        try:
            resp = self.client.post(f"/{method}", json=payload, timeout=timeout_s)
        except httpx.TimeoutException as e:
            raise InfraError(
                f"AppWorld server {self.index} (port {self.port}) did not answer /{method} "
                f"within {timeout_s:.0f} s: hung"
            ) from e
        except httpx.HTTPError as e:
            time.sleep(0.05)  # let a dying process be reaped so the message can say so
            raise InfraError(
                f"AppWorld server {self.index} (port {self.port}) failed on /{method}: "
                f"{type(e).__name__} ({self._exit_text()})"
            ) from e
        if resp.status_code != 200:
            raise InfraError(
                f"AppWorld server {self.index} answered /{method} with HTTP {resp.status_code}; "
                f"log {self.log_path}:\n{_tail(self.log_path, 6)}"
            )
        try:
            return resp.json()["output"]
        except (ValueError, KeyError) as e:
            raise InfraError(
                f"AppWorld server {self.index}: malformed /{method} reply {resp.text[:200]!r}"
            ) from e

    def _exit_text(self) -> str:
        if self.proc is None:
            return "never started"
        code = self.proc.poll()
        return "still running" if code is None else f"process exited with code {code}"

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc), 0 when unknown."""
        if not self.alive():
            return 0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def kill(self) -> None:
        """Kill the server's whole process group and close the client."""
        if self.client is not None:
            self.client.close()
            self.client = None
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:  # the whole group, even when its leader already died
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            if proc.poll() is None:
                proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class ServerPool:
    """`size` prewarmed AppWorld servers; one per concurrent episode; restarts broken ones."""

    def __init__(self, cfg: PoolConfig | None = None):
        self.cfg = cfg or PoolConfig()
        if self.cfg.size < 1:
            raise ValueError("a pool needs at least one server")
        self.root = Path(self.cfg.root or root_dir()).resolve()
        self.data = require_data(self.root)
        self.python = require_venv(self.cfg.venv)
        self.prewarm_task_id = self.cfg.prewarm_task_id or self._first_task()
        self.log_dir = Path(tempfile.mkdtemp(prefix="sgcd-appworld-logs-"))
        self.servers = [
            EnvServer(i, self.python, self.root, self.cfg.venv, self.log_dir)
            for i in range(self.cfg.size)
        ]
        self._idle: queue.Queue[EnvServer] = queue.Queue()
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._restarting: set[int] = set()
        self._started = False
        self._closed = False
        self.restarts = 0
        self.failures: list[str] = []  # why each restart happened
        ref = weakref.ref(self)
        atexit.register(lambda: (p := ref()) is not None and p.close())

    def _first_task(self) -> str:
        for ids in self.data.splits.values():
            if ids:
                return ids[0]
        raise InfraError(f"no tasks listed under {self.root / 'data' / 'datasets'}")

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> ServerPool:
        """Start every server (in parallel) and prewarm each with one world initialisation."""
        with self._start_lock:
            if not self._started:
                self._start_all()
        return self

    def _start_all(self) -> None:
        errors: list[BaseException] = []

        def boot(server: EnvServer) -> None:
            try:
                self._boot(server)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=boot, args=(s,), daemon=True) for s in self.servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.close()
            raise errors[0]
        for s in self.servers:
            self._idle.put(s)
        self._started = True

    def _boot(self, server: EnvServer) -> None:
        server.start(self.cfg.start_timeout_s, self.cfg.max_start_attempts)
        name = self.new_experiment_name("prewarm")
        t0 = time.perf_counter()
        server.post(
            "initialize", self.init_payload(self.prewarm_task_id, name), self.cfg.request_timeout_s
        )
        server.times.warm_init_s = time.perf_counter() - t0
        server.post("close", {"task_id": self.prewarm_task_id}, self.cfg.request_timeout_s)
        self.remove_outputs(name)

    def close(self) -> None:
        """Kill every server and remove the pool's logs."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for s in self.servers:
            s.kill()
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> ServerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- leases -------------------------------------------------------------------------------

    def acquire(self, timeout_s: float | None = None) -> EnvServer:
        """An idle, running server (blocking); InfraError when none frees up in time."""
        if not self._started:
            self.start()
        if self._closed:
            raise InfraError("the AppWorld server pool is closed")
        wait = self.cfg.acquire_timeout_s if timeout_s is None else timeout_s
        try:
            return self._idle.get(timeout=wait)
        except queue.Empty:
            raise InfraError(
                f"no AppWorld server became free within {wait:.0f} s (pool of {self.cfg.size}; "
                "run at most that many episodes at once, each in its own thread)"
            ) from None

    def release(self, server: EnvServer, broken: bool = False, reason: str = "") -> None:
        """Give a server back; a broken one is killed and restarted in the background."""
        if self._closed:
            server.kill()
            return
        if not broken and server.alive():
            self._idle.put(server)
            return
        with self._lock:
            self.restarts += 1
            self.failures.append(reason or "server not running")
            self._restarting.add(server.index)
        threading.Thread(target=self._restart, args=(server,), daemon=True).start()

    def _restart(self, server: EnvServer) -> None:
        try:
            server.kill()
            for attempt in range(self.cfg.max_start_attempts):
                if self._closed:
                    return
                try:
                    self._boot(server)
                    break
                except Exception as e:  # noqa: BLE001 - a failed restart is recorded, then retried
                    self.failures.append(f"restart {attempt + 1} of server {server.index}: {e}")
            else:
                return  # the server stays out of the pool; acquire() times out if none is left
            if not self._closed:
                self._idle.put(server)
        finally:
            with self._lock:
                self._restarting.discard(server.index)

    def wait_idle(self, timeout_s: float = 120.0) -> bool:
        """True once no restart is in progress (for tests and benchmarks)."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            with self._lock:
                if not self._restarting:
                    return True
            time.sleep(0.05)
        return False

    # -- per-rollout names and outputs ---------------------------------------------------------

    def new_experiment_name(self, task_id: str) -> str:
        """A fresh AppWorld experiment name: one per rollout, never reused."""
        return f"{self.cfg.experiment_prefix}-{task_id}-{uuid.uuid4().hex[:12]}"

    def init_payload(self, task_id: str, experiment_name: str) -> dict[str, Any]:
        return {
            "task_id": task_id,
            "experiment_name": experiment_name,
            "timeout_seconds": self.cfg.execution_timeout_s,
        }

    def outputs_dir(self, experiment_name: str) -> Path:
        return self.root / "experiments" / "outputs" / experiment_name

    def remove_outputs(self, experiment_name: str) -> None:
        if not self.cfg.keep_outputs:
            shutil.rmtree(self.outputs_dir(experiment_name), ignore_errors=True)

    def memory_bytes(self) -> list[int]:
        return [s.rss_bytes() for s in self.servers]

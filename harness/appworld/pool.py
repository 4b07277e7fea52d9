"""A pool of AppWorld servers: one zygote per slot, one contained child per episode, one evaluator.

AppWorld holds one world per process, must run on its main thread and freezes the process
clock, so every concurrent episode gets a process of its own. Each pool slot is a *zygote*
(server_main.py zygote, in the AppWorld venv, allow-listed environment): it imports AppWorld
and warms one world without ground truth, and never runs model code. For each episode it forks
a *child* that contains itself (sandbox.py: Landlock, seccomp, no capabilities, memory limit)
before serving that one task on 127.0.0.1; model code runs only there, and the child is
killed when the episode ends. Scoring happens in the pool's *evaluator*, a separate contained
process that never runs model code, from the world state the child saved on disk.

    with ServerPool(PoolConfig(size=2)) as pool:    # starts both zygotes and the evaluator
        server = pool.acquire()                      # blocks until a slot is idle
        server.spawn(task_id, experiment_name)       # a contained child for one episode
        server.post("initialize", {...}); server.post("execute", {...})
        pool.release(server)                         # kills the child; or broken=True
        pool.evaluate(task_id, experiment_name)      # AppWorld's tests on the saved state

Who is to blame when a child fails (see `EnvServer.post`): before any model code ran in it
(start, initialize) always the infrastructure (`InfraError`: retried once, then infra_error,
left out of the metrics). Once model code ran, the agent (`AgentFault`, scored 0 with its own
end reason) unless the harness can show otherwise:
    * no answer in time: agent_timeout, unless the child is stopped (SIGSTOP, state T) or was
      runnable yet got under `starved_cpu_share` of the call's wall time in CPU (starved);
    * death: agent_crash when it exited by itself (any exit code: the server never exits on its
      own) or by a fault signal (SIGSEGV, SIGABRT, SIGSYS from the seccomp filter that kills a
      process trying to send any signal, ...); a SIGKILL/SIGTERM (which model code cannot send)
      or a dead zygote is the infrastructure;
    * an error answer or a malformed or oversized reply: agent_crash (model code can rewrite
      the server in its own process);
    * a MemoryError while running the code: agent_oom.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import shutil
import signal
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

from harness.appworld.install import require_data, require_venv, root_dir, server_env
from harness.records import EndReason, InfraError

SERVER_MAIN = Path(__file__).with_name("server_main.py")
CONTAINMENT = (
    "per-episode child forked from a zygote; Landlock (task files read-only, own output folder "
    "writable, no TCP) + seccomp (no sockets, processes, exec, signals) + no capabilities + "
    "RLIMIT_AS; allow-listed environment; evaluation in a separate process"
)
MAX_REPLY_BYTES = 16 << 20
_TICKS = os.sysconf("SC_CLK_TCK")


class AgentFault(Exception):
    """Model code broke the server that ran it: the episode ends, scored 0, with `reason`."""

    def __init__(self, reason: EndReason, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class PoolConfig:
    """Pool settings. Timeouts in seconds.

    execution_timeout_s is AppWorld's own limit on one code execution (it answers "Execution
    failed ... timed out", a normal tool result); a child that stays silent for
    execution_grace_s longer than that has hung: see the module docstring for who is blamed.
    memory_mb caps each child's address space (RLIMIT_AS) and the evaluator's.
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
    memory_mb: int = 4096
    starved_cpu_share: float = 0.1


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def proc_stat(pid: int) -> tuple[str, float] | None:
    """(state letter, CPU seconds used) of a process from /proc, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], (int(fields[11]) + int(fields[12])) / _TICKS


class _Lines:
    """JSON lines from a subprocess's stdout with a time-out (the zygote's and evaluator's answers)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.buf = proc, b""

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout_s: float) -> dict[str, Any] | None:
        """The next answer; None on time-out or when the process closed its stdout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


@dataclass
class ServerTimes:
    """Seconds from spawn to the zygote's ready (imports and its warm-up world), and of the
    warm-up world's initialisation alone (inside the zygote)."""

    start_s: float = float("nan")
    warm_init_s: float = float("nan")


@dataclass
class Child:
    """One episode's contained server process."""

    pid: int
    port: int
    client: httpx.Client
    ran_code: bool = False  # model code was sent to it: from then on failures may be the agent's


@dataclass
class EnvServer:
    """One pool slot: a zygote process (own process group) and at most one child at a time."""

    index: int
    python: Path
    root: Path
    venv: Path | None
    log_dir: Path
    home: Path
    prewarm_task_id: str = ""
    proc: subprocess.Popen | None = None
    child: Child | None = None
    times: ServerTimes = field(default_factory=ServerTimes)
    starts: int = 0
    starved_cpu_share: float = 0.1  # PoolConfig.starved_cpu_share
    _lines: _Lines | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"server-{self.index}.log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float, attempts: int = 3) -> None:
        """Spawn the zygote and wait (bounded) until it is warm; fails closed (InfraError)."""
        last = ""
        for _ in range(attempts):
            self.kill()
            t0 = time.perf_counter()
            with open(self.log_path, "ab") as log:
                log.write(b"\n--- start ---\n")
                log.flush()
                self.proc = subprocess.Popen(
                    [str(self.python), "-I", str(SERVER_MAIN), "zygote", "--root", str(self.root),
                     "--home", str(self.home), "--prewarm-task", self.prewarm_task_id],
                    cwd=self.root,
                    env=server_env(self.root, self.home, self.venv),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,  # its own process group: killed as a whole
                )  # fmt: skip
            self._lines = _Lines(self.proc)
            ready = self._lines.read(timeout_s)
            if ready is not None and ready.get("ready"):
                self.times.start_s = time.perf_counter() - t0
                self.times.warm_init_s = float(ready.get("prewarm_s", float("nan")))
                self.starts += 1
                return
            if ready is not None and "error" in ready:
                self.kill()
                raise InfraError(f"AppWorld server {self.index}: {ready['error']}")
            code = self.proc.poll()
            last = f"did not start within {timeout_s:.0f} s" if code is None else f"exited with code {code}"
        self.kill()
        raise InfraError(
            f"AppWorld server {self.index} {last} ({attempts} attempts); log {self.log_path}:\n"
            + _tail(self.log_path)
        )

    def _command(self, cmd: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        if self._lines is None or not self.alive():
            raise InfraError(f"AppWorld server {self.index} is not running ({self._exit_text()})")
        try:
            self._lines.send(cmd)
            answer = self._lines.read(timeout_s)
        except (OSError, ValueError) as e:
            raise InfraError(f"AppWorld server {self.index}: {cmd['cmd']} failed: {e}") from e
        if answer is None:
            raise InfraError(f"AppWorld server {self.index} did not answer {cmd['cmd']!r} "
                             f"within {timeout_s:.0f} s ({self._exit_text()})")  # fmt: skip
        if "error" in answer:
            raise InfraError(f"AppWorld server {self.index}: {cmd['cmd']} failed: {answer['error']}")
        return answer

    def spawn(self, task_id: str, experiment_name: str, memory_mb: int, timeout_s: float = 30.0) -> Child:
        """Fork a contained child for one episode of `task_id` and wait until it answers."""
        self.end_episode()
        got = self._command({"cmd": "spawn", "task_id": task_id, "experiment_name": experiment_name,
                             "memory_mb": memory_mb})  # fmt: skip
        client = httpx.Client(base_url=f"http://127.0.0.1:{got['port']}", trust_env=False, timeout=10.0)
        self.child = Child(int(got["pid"]), int(got["port"]), client)
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            try:
                if client.get("/", timeout=2.0).status_code == 200:
                    return self.child
            except httpx.HTTPError:
                pass
            if self._child_status(self.child)["status"] != "running":
                break
            time.sleep(0.05)
        raise InfraError(f"AppWorld server {self.index}: its child for {task_id} did not come up "
                         f"({self._child_status(self.child)}); log {self.log_path}:\n"
                         + _tail(self.log_path, 6))  # fmt: skip

    def _child_status(self, child: Child, wait_s: float = 0.0) -> dict[str, Any]:
        """The child's state from the zygote (which reaps it); polls up to wait_s for its end."""
        deadline = time.monotonic() + wait_s
        while True:
            st = self._command({"cmd": "status", "pid": child.pid}, timeout_s=10.0)
            if st["status"] != "running" or time.monotonic() >= deadline:
                return st
            time.sleep(0.05)

    def post(self, method: str, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """POST /method to the episode's child; its JSON answer, or InfraError / AgentFault."""
        child = self.child
        where = f"AppWorld server {self.index} (child {child.pid if child else '-'})"
        if child is None or not self.alive():
            raise InfraError(f"{where} failed on /{method}: not running ({self._exit_text()})")
        if method == "execute":
            child.ran_code = True
        before, t0 = proc_stat(child.pid), time.monotonic()
        try:
            with child.client.stream("POST", f"/{method}", json=payload, timeout=timeout_s) as resp:
                body = b""
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        self._blame(child, f"{where}: /{method} reply over {MAX_REPLY_BYTES} bytes")
                status = resp.status_code
        except httpx.TimeoutException as e:
            self._hung(child, where, method, timeout_s, before, time.monotonic() - t0)
            raise AssertionError("unreachable") from e
        except httpx.HTTPError as e:
            time.sleep(0.05)
            self._died(child, where, method, e)
            raise AssertionError("unreachable") from e
        try:
            data = json.loads(body)
            assert isinstance(data, dict) and "output" in data
        except (ValueError, AssertionError):
            data = None
        if status != 200 or data is None:
            self._blame(child, f"{where} answered /{method} with HTTP {status}: {body[:300]!r}; "
                               f"log {self.log_path}:\n{_tail(self.log_path, 6)}")  # fmt: skip
        return data  # type: ignore[return-value]

    def _blame(self, child: Child, text: str) -> None:
        if child.ran_code:
            raise AgentFault(EndReason.AGENT_CRASH, f"the server running the agent's code broke: {text}")
        raise InfraError(text)

    def _hung(self, child: Child, where: str, method: str, timeout_s: float,
              before: tuple[str, float] | None, wall: float) -> None:  # fmt: skip
        msg = f"{where} did not answer /{method} within {timeout_s:.0f} s"
        now = proc_stat(child.pid)
        if now is None or now[0] in "ZX":
            self._died(child, where, method, None)
        state, cpu = now  # type: ignore[misc]
        used = cpu - (before[1] if before else cpu)
        share = used / wall if wall > 0 else 0.0
        facts = f"state {state}, {used:.2f} s CPU in {wall:.1f} s"
        if not child.ran_code:
            raise InfraError(f"{msg}: hung ({facts})")
        if state in "Tt":
            raise InfraError(f"{msg}: hung, stopped by someone else ({facts})")
        if state == "R" and share < self.starved_cpu_share:
            raise InfraError(f"{msg}: hung, starved of CPU ({facts})")
        raise AgentFault(EndReason.AGENT_TIMEOUT,
                         f"the agent's code ran past the time limit ({timeout_s:.0f} s; {facts})")

    def _died(self, child: Child, where: str, method: str, err: Exception | None) -> None:
        what = type(err).__name__ if err is not None else "process gone"
        if not self.alive():
            raise InfraError(f"{where} failed on /{method}: {what} (the whole server died: "
                             f"{self._exit_text()})")  # fmt: skip
        try:
            st = self._child_status(child, wait_s=2.0)
        except InfraError as e:
            raise InfraError(f"{where} failed on /{method}: {what}; {e}") from None
        text = f"{where} failed on /{method}: {what} (child {st})"
        if st["status"] == "running":
            self._blame(child, text)  # it answered nothing and lives on: its own doing
        if child.ran_code and (st["status"] == "exited" or st.get("fault")):
            raise AgentFault(EndReason.AGENT_CRASH, f"the agent's code killed its server ({st})")
        raise InfraError(text)

    def end_episode(self) -> dict[str, Any] | None:
        """Kill the episode's child (if any) and return its final status."""
        child, self.child = self.child, None
        if child is None:
            return None
        child.client.close()
        try:
            return self._command({"cmd": "kill", "pid": child.pid}, timeout_s=10.0)
        except InfraError:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise

    def _exit_text(self) -> str:
        if self.proc is None:
            return "never started"
        code = self.proc.poll()
        return "still running" if code is None else f"process exited with code {code}"

    def rss_bytes(self) -> int:
        """Resident memory of the zygote and its child (Linux /proc), 0 when unknown."""
        pids = [p.pid for p in (self.proc,) if p is not None and self.alive()]
        pids += [self.child.pid] if self.child is not None else []
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def kill(self) -> None:
        """Kill the slot's whole process group (zygote and child)."""
        child, self.child = self.child, None
        if child is not None:
            child.client.close()
            try:
                os.kill(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc, self.proc = self.proc, None
        self._lines = None
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
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                f.close()


class Evaluator:
    """The pool's scoring process (server_main.py evaluator): never runs model code."""

    def __init__(self, python: Path, root: Path, venv: Path | None, home: Path, log: Path,
                 memory_mb: int):  # fmt: skip
        self.python, self.root, self.venv, self.home, self.log = python, root, venv, home, log
        self.memory_mb = memory_mb
        self.proc: subprocess.Popen | None = None
        self.lines: _Lines | None = None
        self.lock = threading.Lock()

    def _start(self, timeout_s: float) -> None:
        self.stop()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.python), "-I", str(SERVER_MAIN), "evaluator", "--root", str(self.root),
                 "--home", str(self.home), "--memory-mb", str(self.memory_mb)],
                cwd=self.root, env=server_env(self.root, self.home, self.venv),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
            )  # fmt: skip
        self.lines = _Lines(self.proc)
        ready = self.lines.read(timeout_s)
        if not (ready and ready.get("ready")):
            why = (ready or {}).get("error") or f"log {self.log}:\n{_tail(self.log)}"
            self.stop()
            raise InfraError(f"the AppWorld evaluator did not start: {why}")

    def evaluate(self, task_id: str, experiment_name: str, timeout_s: float) -> dict[str, Any]:
        with self.lock:
            for attempt in (1, 2):
                if self.proc is None or self.proc.poll() is not None:
                    self._start(timeout_s)
                assert self.lines is not None
                try:
                    self.lines.send({"task_id": task_id, "experiment_name": experiment_name})
                    answer = self.lines.read(timeout_s)
                except (OSError, ValueError):
                    answer = None
                if answer is not None and "error" not in answer:
                    return answer
                why = (answer or {}).get("error") or f"no answer in {timeout_s:.0f} s"
                why += "\n" + str((answer or {}).get("trace", ""))
                self.stop()
                if attempt == 2:
                    raise InfraError(f"the AppWorld evaluator failed on {task_id}: {why}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=10)
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()


class ServerPool:
    """`size` warm zygotes (one episode each at a time) and one evaluator; restarts broken slots."""

    def __init__(self, cfg: PoolConfig | None = None):
        self.cfg = cfg or PoolConfig()
        if self.cfg.size < 1:
            raise ValueError("a pool needs at least one server")
        self.root = Path(self.cfg.root or root_dir()).resolve()
        self.data = require_data(self.root)
        self.python = require_venv(self.cfg.venv)
        self.prewarm_task_id = self.cfg.prewarm_task_id or self._first_task()
        self.log_dir = Path(tempfile.mkdtemp(prefix="sgcd-appworld-logs-"))
        self.home = self.log_dir / "home"  # HOME / IPYTHONDIR of the servers: read-only to children
        (self.home / "tmp").mkdir(parents=True)
        self.servers = [
            EnvServer(i, self.python, self.root, self.cfg.venv, self.log_dir, self.home,
                      self.prewarm_task_id, starved_cpu_share=self.cfg.starved_cpu_share)
            for i in range(self.cfg.size)
        ]  # fmt: skip
        self.evaluator = Evaluator(self.python, self.root, self.cfg.venv, self.home,
                                   self.log_dir / "evaluator.log", self.cfg.memory_mb)  # fmt: skip
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
        """Start every zygote and the evaluator (in parallel); each zygote warms one world."""
        with self._start_lock:
            if not self._started:
                self._start_all()
        return self

    def _start_all(self) -> None:
        errors: list[BaseException] = []

        def boot(target: Any) -> None:
            try:
                if isinstance(target, EnvServer):
                    target.start(self.cfg.start_timeout_s, self.cfg.max_start_attempts)
                else:
                    with self.evaluator.lock:
                        self.evaluator._start(self.cfg.start_timeout_s)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        targets = [*self.servers, self.evaluator]
        threads = [threading.Thread(target=boot, args=(t,), daemon=True) for t in targets]
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

    def close(self) -> None:
        """Kill every server and the evaluator, and remove the pool's logs."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for s in self.servers:
            s.kill()
        self.evaluator.stop()
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> ServerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- leases -------------------------------------------------------------------------------

    def acquire(self, timeout_s: float | None = None) -> EnvServer:
        """An idle, running slot (blocking); InfraError when none frees up in time."""
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
        """Give a slot back (its child is killed); a broken one is restarted in the background."""
        if self._closed:
            server.kill()
            return
        if not broken and server.alive():
            try:
                server.end_episode()
                self._idle.put(server)
                return
            except InfraError as e:
                reason = reason or str(e)
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
                    server.start(self.cfg.start_timeout_s, 1)
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

    # -- per-rollout names, outputs and scoring -------------------------------------------------

    def new_experiment_name(self, task_id: str) -> str:
        """A fresh AppWorld experiment name: one per rollout, never reused."""
        return f"{self.cfg.experiment_prefix}-{task_id}-{uuid.uuid4().hex[:12]}"

    def init_payload(self, task_id: str, experiment_name: str) -> dict[str, Any]:
        return {
            "task_id": task_id,
            "experiment_name": experiment_name,
            "timeout_seconds": self.cfg.execution_timeout_s,
        }

    def evaluate(self, task_id: str, experiment_name: str) -> dict[str, Any]:
        """The evaluator's answer for a rollout whose child is gone: {"output": AppWorld's
        report} or {"missing" | "tampered" | "unscorable": why} (the saved state, which only
        the agent's code wrote, cannot be scored: the agent's failure)."""
        return self.evaluator.evaluate(task_id, experiment_name, self.cfg.request_timeout_s)

    def outputs_dir(self, experiment_name: str) -> Path:
        return self.root / "experiments" / "outputs" / experiment_name

    def remove_outputs(self, experiment_name: str) -> None:
        if not self.cfg.keep_outputs:
            shutil.rmtree(self.outputs_dir(experiment_name), ignore_errors=True)

    def memory_bytes(self) -> list[int]:
        return [s.rss_bytes() for s in self.servers]

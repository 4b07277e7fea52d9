"""AppWorld processes of the harness (run in the AppWorld venv, never in the harness).

    python -I server_main.py zygote --root R --prewarm-task T --home H
    python -I server_main.py evaluator --root R --home H

zygote: imports AppWorld and initialises one world without ground truth (so every later world
starts warm), then reads one JSON command a line on stdin and answers one JSON line on stdout:

    {"cmd": "spawn", "task_id", "experiment_name", "memory_mb"} -> {"pid", "port"}
    {"cmd": "status", "pid"}  -> {"status": "running" | "exited" | "signaled" | "unknown", ...}
    {"cmd": "kill", "pid"}    -> the same, once the child is gone

`spawn` forks one child per episode. The child binds 127.0.0.1:port, closes the zygote's
pipes, contains itself (sandbox.contain: Landlock for its task's files and its own output
folder only, no TCP connect, seccomp, no capabilities, memory limit) and only then serves HTTP:

    POST /initialize {task_id, experiment_name, timeout_seconds} -> task (world WITHOUT ground truth)
    POST /execute {task_id, code} -> {output, fault: null | "memory"}
    POST /task_completed {task_id} -> bool
    GET  /  -> ok

The zygote itself never runs model code and never loads ground truth. There is no /evaluate:

evaluator: reads {"task_id", "experiment_name"} lines and answers AppWorld's test report for the
world state that the (then dead) child saved under experiments/outputs/<experiment_name>
({"output": report}), or why that state cannot be scored ({"missing" | "tampered" |
"unscorable": why}: all the agent's doing, since only its code wrote there). It runs contained
as well (read-only files, no sockets), since it reads what model code wrote.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import sys
import sysconfig
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MAX_STATE_BYTES = 256 << 20  # a saved world state larger than this is not replayed
ALLOWED_SQL = ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP")  # what AppWorld's tracker records
FAULT_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT,
                 signal.SIGSYS, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGTRAP}  # fmt: skip


def _load_sandbox() -> Any:
    spec = importlib.util.spec_from_file_location("sgcd_sandbox", HERE / "sandbox.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


sandbox = _load_sandbox()


def _send(obj: dict[str, Any]) -> None:
    sys.__stdout__.write(json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def _system_paths() -> tuple[list[str], list[str]]:
    """(read, read_exec) paths every contained process needs: Python, the venv, libraries."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    prefixes |= {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    read_exec = sorted(prefixes | {"/usr", "/lib", "/lib64", "/bin"})
    read = ["/etc/ld.so.cache", "/etc/localtime", "/etc/timezone", "/dev/urandom",
            str(HERE / "server_main.py"), str(HERE / "sandbox.py")]  # for tracebacks
    return read, read_exec


# --- the per-episode child ----------------------------------------------------------------------


def _child_paths(root: Path, task_id: str, experiment_name: str, home: Path):
    data = root / "data"
    task = data / "tasks" / task_id
    read, read_exec = _system_paths()
    read += [str(home), str(data / "api_docs"), str(data / "base_dbs"), str(task / "specs.json"),
             str(task / "dbs"), os.environ.get("APPWORLD_CACHE", "")]  # fmt: skip
    write = [str(root / "experiments" / "outputs" / experiment_name), "/dev/null"]
    return [p for p in read if p], read_exec, write


def _child(sock: socket.socket, task_id: str, experiment_name: str, memory_mb: int,
           root: Path, home: Path) -> None:  # fmt: skip
    """Runs in the forked child: contain, then serve one world over HTTP on `sock`."""
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)  # the zygote's command pipe: gone
    os.dup2(2, 1)  # stdout to the log, not to the zygote's answer pipe
    os.close(devnull)
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)  # noqa: SIM115
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    read, read_exec, write = _child_paths(root, task_id, experiment_name, home)
    try:
        sandbox.contain(read, read_exec, write, memory_mb << 20)
    except Exception:  # noqa: BLE001 - never serve uncontained
        traceback.print_exc()
        os._exit(70)

    import uvicorn
    from fastapi import Body, FastAPI, HTTPException

    app = FastAPI()
    state: dict[str, Any] = {"world": None}

    def world(tid: str) -> Any:
        if tid != task_id or state["world"] is None:
            raise HTTPException(409, f"this server holds task {task_id}, initialised: "
                                     f"{state['world'] is not None}")  # fmt: skip
        return state["world"]

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {"output": "ok"}

    @app.post("/initialize")
    async def initialize(task_id_: str = Body(..., alias="task_id"), experiment_name_: str =
                         Body(..., alias="experiment_name"), timeout_seconds: int = Body(100)):  # fmt: skip
        from appworld.environment import AppWorld

        if task_id_ != task_id or experiment_name_ != experiment_name or state["world"]:
            raise HTTPException(409, "one world per child, of the task it was made for")
        w = AppWorld(task_id=task_id, experiment_name=experiment_name, load_ground_truth=False,
                     timeout_seconds=timeout_seconds)  # fmt: skip
        state["world"] = w
        t, sup = w.task, w.task.supervisor
        return {"output": {"task_id": t.id, "instruction": t.instruction, "datetime": t.datetime,
                           "supervisor": {k: sup[k] for k in ("first_name", "last_name", "email",
                                                             "phone_number")}}}  # fmt: skip

    @app.post("/execute")
    async def execute(task_id_: str = Body(..., alias="task_id"), code: str = Body(...)):
        w = world(task_id_)
        try:
            output = w.execute(code)
        except MemoryError:
            return {"output": "Execution failed: out of memory.", "fault": "memory"}
        result = getattr(w.shell, "last_execution_result", None)
        err = getattr(result, "error_in_exec", None)
        return {"output": output, "fault": "memory" if isinstance(err, MemoryError) else None}

    @app.post("/task_completed")
    async def task_completed(task_id_: str = Body(..., alias="task_id", embed=True)):
        return {"output": bool(world(task_id_).task_completed())}

    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="asyncio",
                            http="h11", lifespan="off")  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
    os._exit(0)


# --- zygote -------------------------------------------------------------------------------------


def _status(pid: int, block: bool = False) -> dict[str, Any]:
    try:
        got, st = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return {"status": "unknown"}
    if got == 0:
        return {"status": "running"}
    if os.WIFEXITED(st):
        return {"status": "exited", "code": os.WEXITSTATUS(st)}
    sig = os.WTERMSIG(st)
    return {"status": "signaled", "signal": sig, "fault": sig in set(map(int, FAULT_SIGNALS))}


def zygote(args: argparse.Namespace) -> None:
    sandbox.check()  # fail closed before anything else
    root, home = Path(args.root).resolve(), Path(args.home).resolve()
    t0 = time.perf_counter()
    import uvicorn  # noqa: F401 - warm imports for the children
    from appworld.environment import AppWorld
    from fastapi import FastAPI  # noqa: F401

    name = f"prewarm-{os.getpid()}"
    w = AppWorld(task_id=args.prewarm_task, experiment_name=name, load_ground_truth=False)
    w.close()
    AppWorld.close_all()
    del w
    import shutil

    shutil.rmtree(root / "experiments" / "outputs" / name, ignore_errors=True)
    _send({"ready": True, "abi": sandbox.landlock_abi(), "prewarm_s": time.perf_counter() - t0})
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            if cmd["cmd"] == "spawn":
                _send(_spawn(cmd, root, home))
            elif cmd["cmd"] == "status":
                _send(_status(int(cmd["pid"])))
            elif cmd["cmd"] == "kill":
                try:
                    os.kill(int(cmd["pid"]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _send(_status(int(cmd["pid"]), block=True))
            else:
                _send({"error": f"unknown command {cmd['cmd']!r}"})
        except Exception as e:  # noqa: BLE001 - answered, the zygote goes on
            _send({"error": f"{type(e).__name__}: {e}"})


def _spawn(cmd: dict[str, Any], root: Path, home: Path) -> dict[str, Any]:
    task_id, name = str(cmd["task_id"]), str(cmd["experiment_name"])
    if "/" in name or name.startswith(".") or "/" in task_id or task_id.startswith("."):
        return {"error": f"bad task id or experiment name: {task_id!r}, {name!r}"}
    if not (root / "data" / "tasks" / task_id / "specs.json").is_file():
        return {"error": f"unknown task {task_id!r} under {root / 'data' / 'tasks'}"}
    (root / "experiments" / "outputs" / name).mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            _child(sock, task_id, name, int(cmd.get("memory_mb", 4096)), root, home)
        finally:
            os._exit(71)
    sock.close()
    return {"pid": pid, "port": port}


# --- evaluator ----------------------------------------------------------------------------------


def check_changes(dbs: Path) -> str | None:
    """Why the saved world state under `dbs` cannot be replayed safely (None when it can):
    every statement must be one AppWorld's change tracker records (no ATTACH, PRAGMA, ...)."""
    for path in sorted(dbs.rglob("*.jsonl")):
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                statement = json.loads(line)[0]
            except (ValueError, IndexError, KeyError, TypeError):
                return f"{path.name}:{n} is not a recorded change"
            if not isinstance(statement, str) or not statement.lstrip().upper().startswith(
                ALLOWED_SQL
            ):
                return f"{path.name}:{n} holds a statement AppWorld never records"
    return None


def evaluator(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    read, read_exec = _system_paths()
    read += [str(root), str(Path(args.home).resolve()), os.environ.get("APPWORLD_CACHE", "")]
    from appworld import evaluator as aw_eval
    from appworld.apps.model_lib import CachedDBHandler

    sandbox.contain([p for p in read if p], read_exec, ["/dev/null"], args.memory_mb << 20)
    _send({"ready": True})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            task_id, name = str(req["task_id"]), str(req["experiment_name"])
            if "/" in name or "/" in task_id or name.startswith(".") or task_id.startswith("."):
                raise ValueError(f"bad task id or experiment name: {task_id!r}, {name!r}")
            dbs = root / "experiments" / "outputs" / name / "tasks" / task_id / "dbs"
            if not dbs.is_dir():
                _send({"missing": f"no saved world state in {dbs}"})
                continue
            size = sum(p.stat().st_size for p in dbs.rglob("*") if p.is_file())
            bad = check_changes(dbs) if size <= MAX_STATE_BYTES else f"{size} bytes of state"
            if bad is not None:
                _send({"tampered": bad})
                continue
            CachedDBHandler.reset()
            try:
                tracker = aw_eval.evaluate_task(task_id, name, suppress_errors=True,
                                                save_report=False)  # fmt: skip
            except Exception as e:  # noqa: BLE001 - the saved state (the agent's) broke it
                _send({"unscorable": f"{type(e).__name__}: {e}"[:500],
                       "trace": traceback.format_exc()[-2000:]})  # fmt: skip
                continue
            _send({"output": tracker.to_dict(stats_only=False)})
        except Exception as e:  # noqa: BLE001 - answered, the evaluator goes on
            _send({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]})
        finally:
            CachedDBHandler.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    z = sub.add_parser("zygote")
    z.add_argument("--root", required=True)
    z.add_argument("--home", required=True)
    z.add_argument("--prewarm-task", required=True)
    e = sub.add_parser("evaluator")
    e.add_argument("--root", required=True)
    e.add_argument("--home", required=True)
    e.add_argument("--memory-mb", type=int, default=4096)
    args = parser.parse_args()
    sys.stdout = sys.stderr  # stray prints go to the log; answers use sys.__stdout__
    try:
        zygote(args) if args.mode == "zygote" else evaluator(args)
    except sandbox.SandboxUnavailable as e:
        _send({"error": f"containment unavailable: {e}"})
        sys.exit(3)


if __name__ == "__main__":
    main()

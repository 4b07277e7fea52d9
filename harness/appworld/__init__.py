"""AppWorld (appworld 0.1.3.post1): out-of-process environment servers behind the Episode protocol.

Set-up (once): `sgcd-bench appworld setup` makes a separate venv (AppWorld pins pydantic < 2)
with appworld==0.1.3.post1 and runs `appworld install`; `sgcd-bench appworld data` downloads
the data from AppWorld's host (only when asked; it refuses to delete existing data unless
--force). Locations: install.py. The harness never imports `appworld`.

Modules:
    install         venv and data locations, set-up, download, the checks with their fixes
    server_main     the zygote (forks one contained server per episode, on 127.0.0.1) and the
                    evaluator (scores saved world states); both run in the AppWorld venv
    sandbox         Landlock, seccomp, capabilities, rlimits for the processes near model code
    pool            ServerPool: a warm zygote per concurrent episode, one evaluator; who is to
                    blame when a server fails (infra_error or agent_timeout/oom/crash)
    prompt          the ReAct-style system prompt and the `execute_code` tool schema
    episode         AppWorldEpisode: reset / step(execute_code) / finish (AppWorld's evaluator)
    metrics         TGC, SGC, scenario ids, per-seed summaries (pure functions)
    benchmark       AppWorld: the harness.benchmarks.Benchmark adapter (splits, episodes, facts)
    fixture         a synthetic AppWorld-format data folder with known answers, for tests
    fixture_builder writes that folder (runs in the AppWorld venv)
    cli             the `appworld` click group (setup, data, fixture, check)

Licence: AppWorld forbids redistributing its data, API docs, app code or anything derived
from its bundles in plain text; this package contains none, and the fixture is generated at
run time into a temporary folder, never committed.
"""

"""The `sgcd-bench` command line: data, scoring, demo (and, from other modules, more commands)."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from harness.data import DataError

console = Console(stderr=True)


@click.group()
def main() -> None:
    """sgcd-bench: evaluation-first harness for long-horizon tool-use agents."""
    # The project's own rich display is the one progress display: transformers' per-load
    # "Loading weights" / "Writing model shards" bars read this (at its import, which is lazy here).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (e.g. by a plugin): its flag was read then
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    # vLLM's own info and warning lines (its CPU build's missing Triton, LD_PRELOAD advice) are
    # not this run's; its errors still show.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


@main.group()
def data() -> None:
    """Fetch and check benchmark data (the project ships none)."""


@data.command("pull")
@click.argument("dataset")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Copy from a local directory instead of downloading from upstream.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Target directory (default: $SGCD_DATA_DIR/DATASET or the user cache).")
def data_pull(dataset: str, source: Path | None, dest: Path | None) -> None:
    """Put DATASET's files in the data directory, checking every sha256 (DATASET: the data a
    benchmark needs, e.g. its name; `sgcd-bench benchmarks` lists them)."""
    from harness.data import dataset_dir, pull

    target = dest or dataset_dir(dataset)
    try:
        hashes = pull(dataset, source=source, dest_dir=target)
    except DataError as e:
        raise click.ClickException(str(e)) from e
    for name, digest in hashes.items():
        console.print(f"[green]ok[/] {name}  sha256 {digest[:16]}…")
    console.print(f"{dataset} is in {target}")


@data.command("verify")
@click.argument("dataset")
def data_verify(dataset: str) -> None:
    """Check that DATASET is present and intact."""
    from harness.data import dataset_dir, verify

    try:
        hashes = verify(dataset)
    except DataError as e:
        raise click.ClickException(str(e)) from e
    console.print(f"{dataset}: {len(hashes)} files intact in {dataset_dir(dataset)}")


@main.command("eval")
@click.option("--benchmark", required=True, help="A registered benchmark (`sgcd-bench benchmarks` lists them).")
@click.option("--split", default=None, help="Default: the benchmark's own (`sgcd-bench benchmarks`).")
@click.option("--model", required=True, help="local/PATH, local/smollm2, vllm/NAME, openai-api/SERVICE/NAME, …")
@click.option("--user-model", default=None, help="The simulated user's model (default: the agent's model).")
@click.option("--seeds", default=1, show_default=True, type=int, help="Eval seeds (inspect epochs), one seed each.")
@click.option("--base-seed", default=0, show_default=True, type=int, help="Epoch e uses seed base_seed + e - 1.")
@click.option("--temperature", default=0.0, show_default=True, type=float)
@click.option("--limit", default=None, type=int, help="The first N tasks of the split, in file order.")
@click.option("--max-steps", default=None, type=int,
              help="Messages per episode (default: the benchmark's protocol; a different value is recorded).")
@click.option("--max-errors", default=None, type=int,
              help="Tool errors that end an episode (default: the benchmark's protocol).")
@click.option("--max-tokens", default=None, type=int, help="Tokens per model reply (default: the benchmark's protocol).")
@click.option("--pass-k", "pass_k", multiple=True, type=int, help="k for pass^k (default: 1..seeds).")
@click.option("--max-samples", default=None, type=int, help="Episodes run concurrently.")
@click.option("-M", "--model-arg", "model_args", multiple=True, help="KEY=VALUE for the model provider.")
@click.option("-B", "--benchmark-arg", "benchmark_args", multiple=True,
              help="KEY=VALUE for the benchmark: its options (`sgcd-bench benchmarks` lists them).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--display", default=None, help="inspect display: full, rich, plain, none.")
@click.option("--force", is_flag=True, help="Delete a previous run's results in --out and start over.")
@click.option("--max-retries", default=3, show_default=True, type=click.IntRange(min=0),
              help="Retries of a failed model call; then the episode is an infra_error (run again once).")
@click.option("--timeout", default=600, show_default=True, type=click.IntRange(min=1),
              help="Seconds per model call, retries included.")
def eval_cmd(benchmark, split, model, user_model, seeds, base_seed, temperature, limit, max_steps, max_errors,
             max_tokens, pass_k, max_samples, model_args, benchmark_args, out_dir, display, force, max_retries,
             timeout) -> None:  # fmt: skip
    """Evaluate MODEL on a benchmark split over several seeds; write runs/NAME/.

    Re-running into the same --out resumes (and runs again the episodes that ended in an
    infrastructure error); a different configuration there is refused unless --force. Exits
    non-zero when some task x seed has no row."""
    from harness.benchmarks import benchmark_class
    from harness.eval_run import EvalConfig, EvalConfigError, run_eval
    from harness.summary import summary_markdown

    margs = _key_values("-M/--model-arg", model_args)
    bargs = {k: int(v) if v.isdigit() else v for k, v in _key_values("-B/--benchmark-arg", benchmark_args).items()}
    try:
        split = split or benchmark_class(benchmark).default_split
    except KeyError as e:
        raise click.ClickException(str(e.args[0])) from e
    cfg = EvalConfig(benchmark=benchmark, split=split, model=model, user_model=user_model, seeds=seeds,
                     base_seed=base_seed, temperature=temperature, limit=limit, max_steps=max_steps,
                     max_errors=max_errors, max_tokens=max_tokens, pass_k=list(pass_k),
                     max_samples=max_samples, model_args=margs, benchmark_args=bargs, max_retries=max_retries,
                     timeout=timeout)  # fmt: skip
    try:
        summary = run_eval(cfg, out_dir, display=display, force=force)
        manifest = json.loads((out_dir / "manifest.json").read_text())
        md = summary_markdown(summary, manifest)
        (out_dir / "summary.md").write_text(md)
    except (EvalConfigError, DataError, KeyError, ValueError) as e:
        raise click.ClickException(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)) from e
    except OSError as e:
        if e.filename is None and e.errno not in _WRITE_ERRNOS:
            raise click.ClickException(f"the run failed: {type(e).__name__}: {e}") from e
        where = e.filename or out_dir
        raise click.ClickException(f"cannot write {where}: {e.strerror or e}; free space there or choose another --out") from e
    click.echo(md)
    click.echo(f"results: {out_dir / 'results.parquet'} (and .csv); logs: inspect view --log-dir {out_dir / 'logs'}")
    if summary["missing"]:
        raise click.ClickException(
            f"{len(summary['missing'])} of {manifest['expected_rows']} episodes have no row: "
            f"{', '.join(summary['missing'][:20])}{' …' if len(summary['missing']) > 20 else ''}. "
            "Re-run the same command to run them (the inspect logs say what went wrong)."
        )


_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR}


def _key_values(flag: str, items: tuple[str, ...]) -> dict[str, str]:
    """KEY=VALUE arguments as a dict; anything else is a usage error naming the flag."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=flag)
        out[key.strip()] = value
    return out


@main.command("benchmarks")
def benchmarks_cmd() -> None:
    """List the registered benchmarks and what each declares (harness/benchmarks.py)."""
    from harness.benchmarks import benchmark_params, discover

    for name, cls in sorted(discover().items()):
        p = cls.protocol
        caps = [c for c, on in (("scripted solutions", cls.has_scripted), ("oracle credit", cls.has_oracle)) if on]
        click.echo(f"{name}  (default split: {cls.default_split}; {cls.__module__}.{cls.__qualname__})")
        click.echo(f"  protocol:   {p.max_steps} messages, {p.max_errors} tool errors, "
                   f"{p.max_tokens or 'the provider limit of'} tokens per reply, {'a' if p.user else 'no'} simulated user")  # fmt: skip
        click.echo(f"  components: {', '.join(cls.components) or '-'}; null-agent floor: {'yes' if cls.has_floor else 'no'}")
        click.echo(f"  options:    {', '.join(benchmark_params(name)) or '-'} (-B KEY=VALUE)")
        click.echo(f"  data:       {cls.data.name if cls.data else 'its own (see its module)'}; "
                   f"also: {', '.join(caps) or '-'}")  # fmt: skip


@main.command("train")
@click.option("--algo", default=None, help="grpo | sdpo | sgcd | sft (default: the config's, else grpo).")
@click.option("--benchmark", default=None, help="A registered benchmark (default: the config's).")
@click.option("--model", default=None, help="local/PATH or local/smollm2: the checkpoint to start from.")
@click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file overriding any TrainConfig key; [algo] holds the algorithm's keys.")
@click.option("--updates", default=None, type=int, help="Budget: number of updates.")
@click.option("--seed", default=None, type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--processes", default=1, type=click.IntRange(1),
              help="Start this many local training processes (gloo on CPU). On GPU nodes use "
                   "`accelerate launch --config_file configs/accelerate/...` instead.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print memory per device and work per update; train nothing.")
@click.option("--accelerate-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --dry-run: the accelerate config to size for (default: one process).")
@click.option("--device-gib", type=float, default=80.0, show_default=True,
              help="With --dry-run on a machine without GPUs: the memory of one GPU to size for.")
def train_cmd(algo, benchmark, model, config_path, updates, seed, out_dir, processes, dry_run, accelerate_config,
              device_gib) -> None:  # fmt: skip
    """Train a checkpoint; write runs/NAME/train/ (config, manifest, metrics, checkpoints). Re-running resumes."""
    from sgcd.distributed import launched
    from sgcd.launch import LaunchError, run_processes, train_worker
    from sgcd.trainer import NonFiniteError, TrainConfig, Trainer, check_processes

    main_process = int(os.environ.get("RANK", "0")) == 0
    try:
        cfg = TrainConfig.from_toml(config_path, algo=algo, benchmark=benchmark, model=model, updates=updates, seed=seed)
        if dry_run:
            _dry_run([("train", cfg)], accelerate_config, device_gib)
            return
        if processes > 1:
            if launched():
                raise click.UsageError("--processes starts its own processes; under accelerate launch or torchrun "
                                       "leave it out (the launch decides the process count)")  # fmt: skip
            check_processes(cfg, processes)
            done = run_processes(train_worker, (cfg, out_dir), processes)
            console.print(f"{done} updates done with {processes} processes; checkpoints: {out_dir / 'train' / 'checkpoints'}")
            return
        trainer = Trainer(cfg, out_dir)
    except (ValueError, KeyError, FileNotFoundError, DataError, LaunchError) as e:
        raise click.ClickException(str(e)) from e
    if trainer.start_step and main_process:
        console.print(f"resuming from step {trainer.start_step}")
    try:
        rows = trainer.run()
    except NonFiniteError as e:
        raise click.ClickException(str(e)) from e
    last = trainer.latest_checkpoint()
    if main_process:
        console.print(f"{len(rows)} updates done; checkpoint: {last}; metrics: {trainer.dir / 'metrics.jsonl'}")


def _dry_run(configs: list[tuple[str, Any]], accelerate_config: Path | None, device_gib: float) -> None:
    """One sizing table per distinct training setup (sgcd/sizing.py)."""
    from sgcd.sizing import Layout, device_memory_gib, estimate, model_folder, render
    from sgcd.trainer import check_processes

    layout = Layout.read(accelerate_config)
    out = Console(soft_wrap=True)  # the command's output: stdout
    seen = set()
    for name, cfg in configs:
        key = (cfg.algo, cfg.model, str(cfg.lora), cfg.kl_coef > 0, cfg.micro_batch_rows, cfg.gradient_checkpointing)
        if key in seen:
            continue
        seen.add(key)
        check_processes(cfg, layout.processes * layout.machines)
        out.rule(f"{name}: {cfg.algo} on {cfg.benchmark}")
        out.print(render(estimate(cfg, layout, model_folder(cfg.model), device_memory_gib(device_gib))),
                  markup=False, highlight=False)  # fmt: skip


@main.command("experiment")
@click.argument("config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="The experiment's directory (default: runs/NAME).")
@click.option("--force", is_flag=True, help="Redo pieces whose config changed since they ran (else: refused).")
@click.option("--processes", default=1, type=click.IntRange(1),
              help="Train each piece with this many local processes (evaluations run alone).")
@click.option("--dry-run", is_flag=True, help="Print each training setup's memory per device (the config's "
              "accelerate_config, else one process) and work per update; run nothing.")  # fmt: skip
@click.option("--device-gib", type=float, default=80.0, show_default=True,
              help="With --dry-run on a machine without GPUs: the memory of one GPU to size for.")
def experiment_cmd(config_path: Path, out_dir: Path | None, force: bool, processes: int, dry_run: bool,
                   device_gib: float) -> None:  # fmt: skip
    """Train every method x seed, evaluate every checkpoint and the base, write one report.
    Re-running resumes: finished pieces with the same config are skipped."""
    from harness.experiment import Experiment, ExperimentConfig
    from sgcd.launch import LaunchError
    from sgcd.trainer import NonFiniteError

    try:
        cfg = ExperimentConfig.load(config_path)
    except (ValueError, TypeError) as e:
        raise click.ClickException(str(e)) from e
    out = out_dir or Path("runs") / cfg.name
    try:
        if dry_run:
            warm, trains, _ = Experiment(cfg, out).plan()
            acc = Path(cfg.accelerate_config) if cfg.accelerate_config else None
            if acc is not None and not acc.is_file():
                raise click.ClickException(f"accelerate_config {acc} not found (paths are relative to where you run)")
            _dry_run([(p.name, p.config) for p in ([warm] if warm else []) + trains], acc, device_gib)
            return
        if processes > 1:
            from sgcd.distributed import launched
            from sgcd.trainer import check_processes

            if launched():
                raise click.UsageError("--processes starts its own processes; under accelerate launch or torchrun "
                                       "leave it out")  # fmt: skip
            warm, trains, _ = Experiment(cfg, out).plan()
            for piece in ([warm] if warm else []) + trains:  # before any piece runs
                check_processes(piece.config, processes)
        report = Experiment(cfg, out, force=force, processes=processes).run()
    except (ValueError, KeyError, DataError, NonFiniteError, LaunchError) as e:
        raise click.ClickException(str(e)) from e
    if report is not None:
        click.echo(f"report: {report}")


def _register_commands() -> None:
    """The reports' commands, and each benchmark package's own (`harness/<package>/cli.py`, its
    COMMANDS: e.g. τ³-airline's `score` and `demo`, AppWorld's `appworld` group)."""
    from harness.benchmarks import package_modules
    from reports.cli import compare, report

    main.add_command(compare)
    main.add_command(report)
    for module in package_modules("cli"):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()

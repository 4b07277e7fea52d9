"""`sgcd-bench appworld …`: set up AppWorld's venv, fetch its data, build the fixture."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

console = Console(stderr=True)


@click.group()
def appworld() -> None:
    """AppWorld: its own venv (it needs pydantic < 2), its data, and a test fixture."""


@appworld.command("setup")
@click.option("--force", is_flag=True, help="Rebuild the venv even when it is complete.")
@click.option(
    "--venv",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to make the venv (default: $SGCD_APPWORLD_VENV or the user cache).",
)
def setup_cmd(force: bool, venv: Path | None) -> None:
    """Make AppWorld's venv: appworld==0.1.3.post1, then `appworld install` (offline)."""
    from harness.appworld.install import APPWORLD_VERSION, AppWorldSetupError, setup_venv, venv_dir

    target = venv or venv_dir()
    try:
        timings = setup_venv(target, force=force)
    except AppWorldSetupError as e:
        raise click.ClickException(str(e)) from e
    if not timings:
        console.print(
            f"AppWorld {APPWORLD_VERSION} venv already complete at {target} (--force rebuilds it)"
        )
        return
    took = ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items())
    console.print(f"[green]ok[/] AppWorld {APPWORLD_VERSION} venv at {target} ({took})")


@appworld.command("data")
@click.option("--force", is_flag=True, help="Delete existing data and download it again.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="AppWorld data root (default: $SGCD_APPWORLD_ROOT or the user cache).",
)
def data_cmd(force: bool, root: Path | None) -> None:
    """Download AppWorld's data from its own host (`appworld download data`)."""
    from harness.appworld.install import (
        AppWorldSetupError,
        check_split_sizes,
        download_data,
        root_dir,
    )

    target = root or root_dir()
    try:
        info = download_data(target, force=force)
    except AppWorldSetupError as e:
        raise click.ClickException(str(e)) from e
    for split, ids in info.splits.items():
        console.print(f"{split}: {len(ids)} tasks")
    for problem in check_split_sizes(info):
        console.print(f"[yellow]warning[/] {problem}")
    console.print(f"AppWorld data is in {target / 'data'}")


@appworld.command("fixture")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
def fixture_cmd(root: Path) -> None:
    """Build the synthetic AppWorld-format data folder (benchmark `appworld-fixture`) in ROOT."""
    from harness.appworld.fixture import build_fixture
    from harness.appworld.install import AppWorldSetupError

    if (root / "data").exists() and not (root / "data" / "sgcd_fixture.json").is_file():
        raise click.ClickException(f"{root / 'data'} holds other data; choose an empty ROOT")
    try:
        info, seconds = build_fixture(root)
    except AppWorldSetupError as e:
        raise click.ClickException(str(e)) from e
    console.print(
        f"fixture ({', '.join(f'{k}: {len(v)}' for k, v in info.splits.items())}) "
        f"in {root} ({seconds:.0f} s)"
    )


@appworld.command("check")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None)
def check_cmd(root: Path | None) -> None:
    """Say whether the venv and the data are in place (and what fixes them)."""
    from harness.appworld.install import (
        AppWorldSetupError,
        check_split_sizes,
        require_data,
        require_venv,
    )

    try:
        python = require_venv()
        info = require_data(root)
    except AppWorldSetupError as e:
        raise click.ClickException(str(e)) from e
    console.print(f"venv: {python}")
    console.print(f"data: {info.root / 'data'} ({info.benchmark}): "
                  + ", ".join(f"{k} {len(v)}" for k, v in info.splits.items()))  # fmt: skip
    for problem in check_split_sizes(info):
        console.print(f"[yellow]warning[/] {problem}")


COMMANDS = [appworld]

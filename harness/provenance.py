"""What produced a run's numbers, for every report header: data version, models, backend, code.

`provenance(...)` is written into each eval manifest (`manifest["provenance"]`); reports and
summary.md read it back with `provenance_lines`, saying "not recorded" for anything a run lacks.
"""

from __future__ import annotations

from typing import Any


def generation_backend(model: str, model_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """How a model's tokens were generated: backend, dtype and device where the project knows them
    (a `local/` model loaded in this process says what actually served it, fallback included)."""
    args = model_args or {}
    if model.startswith("local/"):
        import torch

        from harness.providers import GENERATION

        info = GENERATION.get(model) or {"backend": str(args.get("backend", "auto")) + " (requested)",
                                         "dtype": args.get("dtype"), "fallback": None}  # fmt: skip
        return {"backend": info["backend"], "dtype": info["dtype"] or ("bfloat16" if torch.cuda.is_available() else "float32"),
                "device": "cuda" if torch.cuda.is_available() else "cpu",
                **({"fallback": info["fallback"]} if info.get("fallback") else {})}  # fmt: skip
    if model in ("none", ""):
        return {"backend": "none"}
    provider = model.split("/", 1)[0]
    return {"backend": f"inspect provider {provider!r} (remote or server-side; dtype not visible here)"}


def generation_columns(model: Any) -> dict[str, Any]:
    """The `backend` and `dtype` columns of a result row, for a model name or an inspect Model
    (a `local/` one says what actually serves it)."""
    api = getattr(model, "api", None)
    if api is not None and hasattr(api, "generation"):
        info = api.generation()
        return {"backend": info["backend"], "dtype": info["dtype"]}
    name = str(model)
    info = generation_backend(name)
    return {"backend": info["backend"] if name.startswith("local/") else name.split("/", 1)[0],
            "dtype": info.get("dtype")}


def provenance(benchmark_manifest: dict[str, Any], model: str, user_model: str, temperature: float,
               model_args: dict[str, Any] | None, git_commit: str | None, version: str | None) -> dict[str, Any]:  # fmt: skip
    """The facts a report header shows for one eval run."""
    data: dict[str, Any] = {}
    for key in ("data_version", "data_hashes"):  # each benchmark's manifest says its data version
        if benchmark_manifest.get(key) is not None:
            data[key] = benchmark_manifest[key]
    return {
        "data": data,
        "agent": {"model": model, **generation_backend(model, model_args)},
        "user": {"model": user_model, "temperature": temperature,
                 **(generation_backend(user_model, model_args) if user_model != model else {"backend": "as the agent"})},  # fmt: skip
        "project": {"version": version, "git_commit": git_commit},
    }


def _data_text(data: dict[str, Any]) -> str:
    parts = []
    if data.get("data_version"):
        parts.append(str(data["data_version"]))
    if isinstance(data.get("data_hashes"), dict):
        parts.append(", ".join(f"{k} {str(v)[:12]}" for k, v in sorted(data["data_hashes"].items()) if v))
    return "; ".join(parts) or "not recorded"


def provenance_fields(manifest: dict[str, Any]) -> dict[str, str]:
    """Header fields from a run manifest; older manifests without `provenance` give what they have."""
    p = manifest.get("provenance")
    if not isinstance(p, dict):  # an older run: what its manifest holds
        packages = manifest.get("packages") or {}
        data = {k: manifest[k] for k in ("data_version", "data_hashes") if k in manifest}
        p = {"data": data, "agent": {}, "user": {"model": manifest.get("user_model"), "temperature": manifest.get("temperature")},
             "project": {"version": packages.get("sgcd-bench"), "git_commit": manifest.get("git_commit")}}  # fmt: skip
    agent, user, project = p.get("agent") or {}, p.get("user") or {}, p.get("project") or {}

    def backend(d: dict[str, Any]) -> str:
        if not d.get("backend"):
            return "not recorded"
        extra = ", ".join(f"{k} {d[k]}" for k in ("dtype", "device", "fallback") if d.get(k))
        return d["backend"] + (f" ({extra})" if extra else "")

    user_model = user.get("model") or "not recorded"
    temp = user.get("temperature")
    if user_model == "none":
        user_text = "none (no simulated user)"
    else:
        user_text = f"{user_model} at temperature {temp}" if temp is not None else user_model
    return {
        "benchmark data": _data_text(p.get("data") or {}),
        "user model": user_text,
        "generation": f"agent: {backend(agent)}; user: {backend(user)}",
        "project": f"sgcd-bench {project.get('version') or 'version not recorded'}, git "
                   f"{str(project.get('git_commit') or 'commit not recorded')[:12]}",  # fmt: skip
    }


def provenance_lines(manifest: dict[str, Any]) -> list[str]:
    """Markdown bullet lines for a header."""
    return [f"- {k}: {v}" for k, v in provenance_fields(manifest).items()]

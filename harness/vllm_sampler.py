"""The `vllm` sampler: vLLM's engine, in this process, behind the sampler seam.

Prompts go in as token ids (`skip_tokenizer_init`): vLLM never applies its own chat template,
tool parser or detokenizer, so the project's format is the only one. Each row carries its own
seed (vLLM's per-request generator), temperature, top_p, token budget and stop ids, and comes
back with its sampled ids and their raw log-probs (vLLM's default `raw_logprobs`: the model's
distribution at temperature 1, what the trainer's PPO ratio is compared against).

One engine per process and model shape (`engine_for`): checkpoints of the same model (a
warm start, every method's and seed's steps) share it, and a sampler whose weights are not the
ones loaded pushes its own first (`reload_weights` from live tensors, ~0.5 s for SmolLM2 on 2
cores). The engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0), which is what lets the
trainer push its live weights without a disk round trip. On a GPU host the same code takes
`tensor_parallel_size` and `gpu_memory_utilization` (SamplerOptions).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.sampler import Completion, SampleRequest, SamplerError, SamplerOptions

# Config fields that do not change what the engine computes: checkpoints that differ only in
# these share an engine.
_IRRELEVANT = ("_name_or_path", "transformers_version", "torch_dtype", "dtype")


@dataclass
class _Engine:
    llm: Any
    key: str
    started_from: Path  # the folder whose weights it holds until some sampler pushes others
    owner: Any = None  # the sampler whose weights are loaded now (None: no sampler's, or stale)
    pushed: bool = False  # some sampler has loaded weights into it since it started
    dead: str | None = None  # why the engine may no longer be used


_ENGINES: dict[str, _Engine] = {}
_LOCK = threading.RLock()


def _engine_key(path: Path, options: SamplerOptions, dtype: str, max_len: int) -> str:
    cfg = json.loads((path / "config.json").read_text())
    cfg = {k: v for k, v in cfg.items() if k not in _IRRELEVANT}
    blob = json.dumps([cfg, dtype, max_len, options.tensor_parallel_size, options.kv_cache_gib,
                       options.gpu_memory_utilization, options.enforce_eager], sort_keys=True)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _start_engine(path: Path, options: SamplerOptions, dtype: str, max_len: int) -> Any:
    import torch

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine lives in this process
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    # vLLM's CPU worker drops torch to 1 thread unless OMP_NUM_THREADS is set, and replaces
    # torch.set_num_threads with a no-op: the trainer in the same process keeps its threads.
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    set_threads = torch.set_num_threads
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")  # its own deprecated torch calls
    # Its CPU build says at import that Triton lacks a CPU backend (before its logging is set up).
    logging.getLogger("vllm.triton_utils.importing").setLevel(logging.ERROR)
    from vllm import LLM

    kwargs: dict[str, Any] = dict(model=str(path), skip_tokenizer_init=True, dtype=dtype, max_model_len=max_len,
                                  enforce_eager=options.enforce_eager, seed=0, use_tqdm_on_load=False,
                                  tensor_parallel_size=options.tensor_parallel_size)  # fmt: skip
    if torch.cuda.is_available():
        kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
    else:
        # Chunked prefill off (whole prompts per step): on the CPU build a seeded request whose
        # prompt is split over steps crashes the engine ("CPU Generator does not use offset").
        kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max_len)
        if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            kwargs["kv_cache_memory_bytes"] = int(options.kv_cache_gib * 2**30)
    try:
        llm = LLM(**kwargs, **options.extra)
    finally:
        torch.set_num_threads = set_threads
    # A one-token probe: some kernels fail only on the first forward pass (e.g. a head size the
    # CPU attention lacks), which must surface here, where the caller can still fall back.
    from vllm import SamplingParams

    llm.generate([{"prompt_token_ids": [0, 0]}], SamplingParams(max_tokens=1, detokenize=False), use_tqdm=False)
    return llm


def engine_for(path: Path, options: SamplerOptions, dtype: str, max_len: int) -> _Engine:
    key = _engine_key(path, options, dtype, max_len)
    with _LOCK:
        eng = _ENGINES.get(key)
        if eng is None or eng.dead:
            eng = _Engine(_start_engine(path, options, dtype, max_len), key, path)
            _ENGINES[key] = eng
        return eng


def folder_weights(path: Path) -> Callable[[], Iterable[tuple[str, Any]]]:
    """The (name, tensor) pairs of a checkpoint folder's safetensors files, as the live model's
    state_dict names them: a model with tied embeddings saves no `lm_head.weight`, and vLLM's
    reload leaves its lm_head at the old weights unless it is given (measured: 1.4 nats off)."""

    def read() -> Iterable[tuple[str, Any]]:
        from safetensors import safe_open

        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{path} has no .safetensors weights to load into vLLM")
        tied = bool(json.loads((path / "config.json").read_text()).get("tie_word_embeddings"))
        names = set()
        for f in files:
            with safe_open(str(f), framework="pt") as st:
                for name in st.keys():
                    names.add(name)
                    tensor = st.get_tensor(name)
                    yield name, tensor
                    if tied and name.endswith("embed_tokens.weight") and "lm_head.weight" not in names:
                        names.add("lm_head.weight")
                        yield "lm_head.weight", tensor

    return read


class VLLMSampler:
    backend = "vllm"
    fallback: str | None = None

    def __init__(self, path: Path, options: SamplerOptions, dtype: str):
        cfg = json.loads((path / "config.json").read_text())
        self.path, self.options, self.dtype = path, options, dtype
        self.max_len = options.max_context or int(cfg.get("max_position_embeddings") or 2048)
        self.engine = engine_for(path, options, dtype, self.max_len)
        self._weights = folder_weights(path)
        with _LOCK:
            eng = self.engine
            if eng.owner is None and eng.started_from == path and not eng.pushed:  # just started from this folder
                eng.owner = self

    def load_weights(self, named_tensors: Callable[[], Iterable[tuple[str, Any]]]) -> None:
        """Pushed into the engine before this sampler's next batch (an SFT run that never samples
        never pays for it)."""
        self._weights = named_tensors
        with _LOCK:
            if self.engine.owner is self:
                self.engine.owner = None

    def _push(self) -> None:
        try:
            self.engine.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(self._weights())})
        except Exception as e:
            self.engine.dead = f"weight reload failed: {e}"
            raise SamplerError(f"vLLM engine for {self.path}: weight reload failed: {type(e).__name__}: {e}") from e
        self.engine.owner, self.engine.pushed = self, True
        self.clear_cache()  # cached prompt keys/values were computed with the old weights

    def clear_cache(self) -> None:
        """vLLM's prefix cache is keyed by token ids, not weights: new weights need it emptied."""
        try:
            self.engine.llm.reset_prefix_cache()
        except Exception:  # an engine without prefix caching has nothing to empty
            pass

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        from vllm import SamplingParams

        params = [
            SamplingParams(max_tokens=r.max_tokens, temperature=r.sampling.temperature, top_p=r.sampling.top_p,
                           seed=None if r.sampling.seed is None else r.sampling.seed % 2**63, stop_token_ids=list(r.stop_ids),
                           logprobs=0, detokenize=False, skip_special_tokens=False)  # fmt: skip
            for r in requests
        ]
        prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in requests]
        with _LOCK:
            if self.engine.dead:
                raise SamplerError(f"vLLM engine for {self.path} is unusable: {self.engine.dead}")
            if self.engine.owner is not self:
                self._push()
            try:
                outs = self.engine.llm.generate(prompts, params, use_tqdm=False)
            except Exception as e:  # the engine died mid-batch: every row it served fails with it
                self.engine.dead = f"{type(e).__name__}: {e}"
                raise SamplerError(f"vLLM engine for {self.path} failed: {type(e).__name__}: {e}") from e
        result = []
        for o in outs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            logprobs = [float(lp[t].logprob) for lp, t in zip(c.logprobs or [], ids, strict=False)]
            finish = "stop" if c.finish_reason == "stop" else "max_tokens"  # the end token is kept in `ids`
            reused = int(getattr(o, "num_cached_tokens", 0) or 0)
            result.append(Completion(ids, logprobs, finish, reused))
        return result

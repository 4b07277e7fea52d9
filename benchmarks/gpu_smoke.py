"""GPU smoke test (one GPU, a few minutes): GRPO and SGCD, 2 updates each, with bf16 mixed
precision, with FSDP2 on one process, and with a LoRA adapter; prints step times and peak GPU
memory from each run's metrics. A tiny model is built here (nothing is downloaded); the sampler is
the transformers one unless vLLM is installed. Run through benchmarks/gpu_smoke.sh.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = """algo = "{algo}"
benchmark = "toy"
updates = 2
groups_per_update = 2
group_size = 4
dynamic_sampling = false
max_new_tokens = 24
max_steps = 4
max_errors = 2
micro_batch_rows = 8
lr = 1e-4
checkpoint_every = 2
backend = "{backend}"
[benchmark_args]
levels = "0"
{extra}
"""


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_smoke: no CUDA device here; run it on a GPU host")
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/gpu-smoke").resolve()
    out.mkdir(parents=True, exist_ok=True)
    from harness.tiny_model import build_tiny_model
    from harness.toy.benchmark import scripted_corpus

    t0 = time.perf_counter()
    model = build_tiny_model(out / "model", scripted_corpus(200), vocab_size=1024, hidden=256, layers=4, heads=4,
                             max_context=2048)  # fmt: skip
    try:
        import vllm  # noqa: F401

        backend = "auto"
    except ImportError:
        backend = "hf"
    py = [sys.executable, "-m", "harness.cli", "train"]
    acc = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1"]
    warm = out / "warm"
    (out / "warm.toml").write_text(f'algo = "sft"\nbenchmark = "toy"\nupdates = 20\nsft_examples_per_update = 16\n'
                                   f'lr = 3e-3\nmicro_batch_rows = 16\ncheckpoint_every = 20\nbackend = "{backend}"\n'
                                   '[benchmark_args]\nlevels = "0"\n')  # fmt: skip
    subprocess.run([*py, "--config", str(out / "warm.toml"), "--model", f"local/{model}", "--out", str(warm)],
                   check=True, cwd=ROOT)  # fmt: skip
    start = f"local/{warm / 'train' / 'checkpoints' / 'step-20'}"
    setups = {
        "bf16": [*acc, "--mixed_precision", "bf16"],
        "fsdp2": [*acc, "--config_file", str(ROOT / "configs/accelerate/fsdp2-8gpu.yaml")],
        "lora": [*acc, "--mixed_precision", "bf16"],
    }
    rows = []
    for setup, launch in setups.items():
        for algo, extra in (("grpo", ""), ("sgcd", '[algo]\nprovider = "oracle"\n')):
            if setup == "lora":
                extra = 'lora = { r = 16, alpha = 32 }\n' + extra
            cfg = out / f"{algo}-{setup}.toml"
            cfg.write_text(RUN.format(algo=algo, backend=backend, extra=extra))
            run = out / f"{algo}-{setup}"
            t1 = time.perf_counter()
            subprocess.run([*launch, "-m", "harness.cli", "train", "--config", str(cfg), "--model", start, "--out",
                            str(run)], check=True, cwd=ROOT)  # fmt: skip
            wall = time.perf_counter() - t1
            for r in (json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines()):
                rows.append((f"{algo} {setup}", r["step"], r["seconds"], r.get("gpu_peak_gib"), r.get("loss"), wall))
    print(f"\nGPU smoke on {torch.cuda.get_device_name(0)} (torch {torch.__version__}, sampler: {backend}); "
          f"total {time.perf_counter() - t0:.0f} s")
    print("| run | step | seconds | peak GPU GiB (trainer) | loss | launch wall s |\n|---|---:|---:|---:|---:|---:|")
    for name, step, sec, peak, loss, wall in rows:
        print(f"| {name} | {step} | {sec:.2f} | {peak if peak is not None else '-'} | "
              f"{'-' if loss is None else f'{loss:.4f}'} | {wall:.0f} |")


if __name__ == "__main__":
    main()

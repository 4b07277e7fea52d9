"""The τ³-airline data files: upstream paths and sha256 hashes (pulled by `sgcd-bench data pull`)."""

from __future__ import annotations

from harness.data import DataFile, Dataset

_AIRLINE = "data/tau2/domains/airline"

# Hashes and upstream paths as listed in the τ³-airline SPEC.md (tau2-bench commit a2c024725189).
TAU3_AIRLINE = Dataset(
    name="tau3-airline",
    upstream_repo="sierra-research/tau2-bench",
    upstream_commit="a2c024725189",
    files=(
        DataFile("db.json", "1af9fea6e03ca7ca15a22bb3fcaf3e351393e3fc9070b6777947da8996f7531b", f"{_AIRLINE}/db.json"),
        DataFile("tasks.json", "ccd8ba737b4cc371415af70151187788f728d6108d0916e73bb4317b40542052", f"{_AIRLINE}/tasks.json"),
        DataFile("split_tasks.json", "b22ced4d9a9850ac9aea31c53bdcb6d6009058140bd9acc7db37c1d36222ba8b", f"{_AIRLINE}/split_tasks.json"),
        DataFile("policy.md", "10dc0525421521208be39cee235bba84a16e2bcba9899eb93d92cd81d2f62fc4", f"{_AIRLINE}/policy.md"),
        DataFile(
            "simulation_guidelines.md",
            "740a29dfa64d7bc08eea3bf7493575b914a63f744acbaf7f199ee07eddaf72d3",
            "data/tau2/user_simulator/simulation_guidelines.md",
        ),
        # Not a file upstream: it is what the official environment emits. Optional.
        DataFile("tools.json", "b4b1b30b6929a7ceaa4869dc17e16fcce2862c2cad5fb6a70a6907662e37d8af", None, optional=True),
        # The MIT notice travels with every copy of the data.
        DataFile("LICENSE", None, "LICENSE", optional=True),
    ),
)

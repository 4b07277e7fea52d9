"""A new algorithm is one module: found by discovery (baselines/ or an entry point), never by a
list; the trainer reaches it only through its hooks; a broken plugin is named, not fatal."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

from sgcd import algorithms
from sgcd.algorithms import Algorithm, Term, get_algorithm

PLUGIN = '''
"""A third party's algorithm: self-imitation (every sampled token pushed up, advantage 1)."""
from dataclasses import dataclass

from sgcd.algorithms import Algorithm, Term

CALLS = []


class SelfImitation(Algorithm):
    name = "self_imitation"

    @dataclass
    class Config:
        scale: float = 1.0

    def collect(self, source, step):
        CALLS.append("collect")
        return super().collect(source, step)

    def prepare(self, batch, old_logp):
        CALLS.append("prepare")
        tokens = float(batch.loss_mask.sum())
        return {"tokens": tokens, "old": old_logp}, {"plugin_tokens": tokens}

    def token_advantages(self, batch, traj_adv, work):
        CALLS.append("token_advantages")
        assert work["old"].shape == batch.loss_mask.shape  # what prepare returned, handed on
        return batch.loss_mask.clone(), {"rows": int(batch.input_ids.shape[0])}

    def write_audit(self, audits, main):
        CALLS.append("write_audit")
        return {"plugin_audit_rows": float(sum(a["rows"] for a in audits if a))}

    def loss(self, batch, logp, old_logp, ref_logp, adv_tok, rows, logits=None, work=None):
        CALLS.append("loss")
        value = -(adv_tok * logp * batch.loss_mask[rows]).sum()  # a sum: a mean over the update's tokens
        return [Term(value, over=work["tokens"], coef=self.cfg.scale, metric="imitation")], {}
'''


def _dist_info(root, dist: str, entry_points: str) -> None:
    """An installed distribution as importlib.metadata finds one on sys.path."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture()
def registry(monkeypatch):
    """The registry as it is (every built-in imported), restored after the test."""
    get_algorithm("grpo")
    monkeypatch.setattr(algorithms, "_REGISTRY", dict(algorithms._REGISTRY))
    yield
    for mod in ("sgcd_test_plugin", "sgcd_test_plugin_missing", "baselines.sgcd_test_extra"):
        sys.modules.pop(mod, None)


def test_the_builtins_are_discovered_and_sgcd_comes_through_its_entry_point():
    from importlib.metadata import entry_points

    names = {n: get_algorithm(n) for n in ("grpo", "sdpo", "sft", "sgcd")}
    assert {n: cls.name for n, cls in names.items()} == {n: n for n in names}
    sgcd = [ep for ep in entry_points(group=algorithms.ENTRY_POINT_GROUP) if ep.name == "sgcd"]
    assert [ep.value for ep in sgcd] == ["sgcd.method"]  # not in baselines/: found as a plugin is
    grpo = names["grpo"]
    assert issubclass(names["sgcd"], grpo) and issubclass(names["sdpo"], grpo)  # their actor loss is GRPO's
    assert names["sft"].budget_key == "sft_examples_per_update" and grpo.budget_key == "groups_per_update"
    with pytest.raises(KeyError, match=r"^\"unknown algorithm 'ppo'; known: grpo, sdpo, sft, sgcd\"$"):
        get_algorithm("ppo")


def test_a_new_module_in_baselines_is_all_it_takes(registry, tmp_path, monkeypatch):
    import baselines

    (tmp_path / "sgcd_test_extra.py").write_text(PLUGIN.replace('"self_imitation"', '"extra_test"'))
    monkeypatch.setattr(baselines, "__path__", [*baselines.__path__, str(tmp_path)])  # as if dropped in
    assert "baselines.sgcd_test_extra" not in sys.modules
    assert get_algorithm("extra_test").__module__ == "baselines.sgcd_test_extra"


def test_the_base_has_no_loss_and_a_name_is_taken_once(registry):
    class Nameless(Algorithm):
        name = "nameless_test"

    with pytest.raises(NotImplementedError, match="Nameless"):
        Nameless(None, None).loss(None, None, None, None, None, None)
    with pytest.raises(TypeError, match="'grpo' .* is taken by baselines.grpo.GRPO"):

        class Impostor(Algorithm):
            name = "grpo"


def test_an_algorithm_in_one_new_module_behind_an_entry_point_trains(registry, tmp_path, monkeypatch,
                                                                      toy_tiny_dir):  # fmt: skip
    (tmp_path / "sgcd_test_plugin.py").write_text(PLUGIN)
    _dist_info(tmp_path, "sgcd_test_plugin", "[sgcd_bench.algorithms]\nself_imitation = sgcd_test_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "sgcd_test_plugin" not in sys.modules  # nothing imported it before the lookup
    assert get_algorithm("self_imitation").__module__ == "sgcd_test_plugin"
    with pytest.raises(KeyError, match="known: grpo, sdpo, self_imitation, sft, sgcd"):
        get_algorithm("x")

    from sgcd.trainer import TrainConfig, Trainer

    cfg = TrainConfig(algo="self_imitation", benchmark="toy", benchmark_args={"levels": "0"},
                      model=f"local/{toy_tiny_dir}", updates=1, groups_per_update=1, group_size=2,
                      dynamic_sampling=False, max_new_tokens=8, max_steps=3, max_errors=2, micro_batch_rows=1,
                      lr=1e-3, threads=1, algo_config={"scale": 1.0})  # fmt: skip
    tr = Trainer(cfg, tmp_path / "run")
    before = [p.detach().clone() for p in tr.policy.model.parameters()]
    (row,) = tr.run(progress=False)
    calls = sys.modules["sgcd_test_plugin"].CALLS
    assert calls[:4] == ["collect", "prepare", "token_advantages", "write_audit"]
    assert calls[4:] == ["loss"] * (len(calls) - 4) and len(calls) - 4 == row["process_rows"][0]  # one per row
    assert row["groups_sampled"] == 1 and row["plugin_tokens"] == row["policy_tokens"] > 0
    assert row["plugin_audit_rows"] == row["process_rows"][0]
    # the micro-batches' weighted parts add up to the update's loss: the trainer weighted once
    assert row["loss"] == pytest.approx(row["imitation"], rel=1e-6) and row["imitation"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.policy.model.parameters(), strict=True))
    saved = json.loads((tmp_path / "run" / "train" / "metrics.jsonl").read_text().splitlines()[0])
    assert saved["imitation"] == pytest.approx(row["imitation"])


def test_a_broken_entry_point_is_named_and_does_not_hide_the_others(registry, tmp_path, monkeypatch):
    _dist_info(tmp_path, "sgcd_test_broken", "[sgcd_bench.algorithms]\nbroken_algo = sgcd_test_plugin_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="entry point 'broken_algo' = 'sgcd_test_plugin_missing'"):
        assert get_algorithm("grpo").name == "grpo"  # an unrelated lookup still works
    with pytest.raises(KeyError, match=r"algorithm 'broken_algo': entry point 'broken_algo' .* failed to load: "
                                       r"ModuleNotFoundError: No module named 'sgcd_test_plugin_missing'"):  # fmt: skip
        get_algorithm("broken_algo")
    with pytest.raises(KeyError, match=r"unknown algorithm 'other'; known: grpo, sdpo, sft, sgcd; entry point "
                                       r"'broken_algo'"):  # fmt: skip
        get_algorithm("other")

    from harness.configs import ConfigError
    from sgcd.trainer import TrainConfig

    with pytest.raises(ConfigError, match="broken_algo.*No module named"):
        TrainConfig(algo="broken_algo")


def test_weigh_applies_the_one_weighting():
    """A term over an aggregation is weighted by the micro-batch's share; a term over a count N is
    a sum divided by N; coef 0 is reported but not in the loss; a replica weighs nothing."""
    from sgcd.tokens import Segment, collate

    segs = [Segment(ids=[1, 2, 3, 4], mask=[0, 1, 1, 1], traj=0), Segment(ids=[1, 2], mask=[0, 1], traj=1)]
    batch = collate(segs, [0, 0], [1.0, 0.0], [True, False], 0)
    rows = torch.tensor([1])
    mean, total = torch.tensor(2.0, requires_grad=True), torch.tensor(6.0)
    terms = [Term(mean, "token-mean", coef=0.5, metric="a"), Term(total, 3.0, metric="b"),
             Term(torch.tensor(9.0), "seq-mean-token-mean", coef=0.0, metric="c")]  # fmt: skip
    loss, parts = algorithms.weigh(terms, batch, rows)
    assert parts == {"a": 2.0 * 1 / 4, "b": 2.0, "c": 9.0 / 2}
    assert float(loss.detach()) == pytest.approx(0.5 * 0.5 + 2.0)
    loss.backward()
    assert float(mean.grad) == pytest.approx(0.5 * 1 / 4)
    batch.counts = False
    loss, parts = algorithms.weigh([Term(mean, "token-mean"), Term(total, 3.0, metric="b")], batch, rows)
    assert float(loss.detach()) == 0.0 and parts == {"b": 0.0}


def test_the_readme_algorithm_is_found_and_its_loss_is_weighted_once(registry, tmp_path, monkeypatch):
    """README "Add an algorithm": the module shown there, dropped into baselines/, is found by
    name; its token-mean term is weighted by the micro-batch's share of the update's tokens."""
    import re
    from pathlib import Path

    import baselines
    from sgcd.tokens import Segment, collate

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Add an algorithm", 1)[1].split("\n## ", 1)[0]
    (tmp_path / "reinforce_readme.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    monkeypatch.setattr(baselines, "__path__", [*baselines.__path__, str(tmp_path)])
    cls = get_algorithm("reinforce")
    assert cls.__module__ == "baselines.reinforce_readme"
    segs = [Segment(ids=[1, 2, 3, 4], mask=[0, 1, 1, 1], traj=0), Segment(ids=[1, 2], mask=[0, 1], traj=1)]
    batch = collate(segs, [0, 0], [1.0, 0.0], [True, False], 0)
    batch.global_tokens, batch.global_rows = 4.0, 2.0
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.25, 0.25]]))
    adv = torch.tensor([[0.0, 1.0, 1.0, -1.0]])
    terms, _ = cls(cls.Config(), None).loss(batch, logp, logp, None, adv, torch.tensor([0]))
    loss, parts = algorithms.weigh(terms, batch, torch.tensor([0]))
    by_hand = -(torch.log(torch.tensor(0.5)) + torch.log(torch.tensor(0.25)) - torch.log(torch.tensor(0.25))) / 3
    assert float(loss) == pytest.approx(float(by_hand) * 3 / 4)  # row 0 holds 3 of the update's 4 tokens
    assert parts["pg"] == pytest.approx(float(loss))
    for mod in ("baselines.reinforce_readme",):
        sys.modules.pop(mod, None)

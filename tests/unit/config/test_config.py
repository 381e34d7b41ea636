"""Configuration mistakes a person makes, each answered with one line naming file, key and cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayrl.config import ConfigError, LossConfig, RunConfig, SandboxConfig
from relayrl.config.sandbox import SWE_LIMITS

ROOT = Path(__file__).resolve().parents[3]


def load(tmp_path, text: str) -> list[str]:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        RunConfig.load(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line.removeprefix(f"{path}: ") for line in lines]


@pytest.mark.parametrize("text, expected", [
    ("learner:\n  batch_grups: 3\n", "learner.batch_grups: unknown key; did you mean `batch_groups`?"),
    ("leaner: {}\n", "leaner: unknown key; did you mean `learner`?"),
    ("rollout: {engine: {type: vllm, dtyp: x}}\n", "rollout.engine.dtyp: unknown key; did you mean `dtype`?"),
    ("learner:\n  optim: {lr: fast}\n",
     "learner.optim.lr: Input should be a valid number, unable to parse string as a number (got 'fast')"),
    ("learner: {batch_groups: -3}\n", "learner.batch_groups: Input should be greater than or equal to 1 (got -3)"),
    ("learner: {lr: 0.1}\n", "learner.lr: this key moved to learner.optim.lr"),
    ("learner: {checkpoint_every: 5}\n", "learner.checkpoint_every: this key moved to learner.checkpoint.every"),
    ("reward: {swe: {memory_mb: 100}}\n", "reward.swe.memory_mb: this key moved to reward.swe.limits.memory_mb"),
    ("model: {tiny: {max_position_embeddings: 8}}\n",
     "rollout.sampling.max_new_tokens must be below model.tiny.max_position_embeddings"),
    ("learner:\n  - a\n  b: [\n", "line 3, column 3: invalid YAML: expected <block end>, but found '?'"),
    ("[1, 2]\n", "expected a mapping of sections at the top level, got list"),
    ("tracking: [tensorbord]\n", "tracking.backends.0: Input should be 'tensorboard', 'wandb' or 'mlflow' (got 'tensorbord')"),
    ("tracking: [wandb, wandb]\n", "tracking.backends lists a backend twice: ['wandb', 'wandb']"),
    ("eval: {every_steps: 50, datasets: [gsm9k]}\n", "eval.datasets: unknown datasets ['gsm9k']: use task, task:<name>, "
                                                     "gsm8k, rg:<reasoning-gym name> or humaneval"),
    ("eval: {every_step: 50}\n", "eval.every_step: unknown key; did you mean `every_steps`?"),
])
def test_a_mistake_is_one_line_naming_the_key(tmp_path, text, expected):
    assert load(tmp_path, text) == [expected]


def test_every_problem_is_reported_at_once(tmp_path):
    assert load(tmp_path, "learner: {lr: -1, batch_grups: 3}\nqueue: {type: redis, lease_idle_s: 0}\n") == [
        "queue.lease_idle_s: Input should be greater than 0 (got 0)",  # in the order of the sections
        "learner.lr: this key moved to learner.optim.lr",
        "learner.batch_grups: unknown key; did you mean `batch_groups`?"]


def test_the_old_engine_string_names_its_new_shape(tmp_path):
    problems = load(tmp_path, "rollout: {engine: vllm, vllm: {dtype: float32}}\n")
    assert problems[0].startswith("rollout.engine: is a section now; write `engine: {type: vllm}`")
    assert problems[1].startswith("rollout.vllm: this key moved to rollout.engine")


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        RunConfig.load(tmp_path / "missing.yaml")


def test_sections_carry_their_defaults():
    cfg = RunConfig.parse({"rollout": {"engine": {"type": "vllm"}}, "learner": {"loss": {"algorithm": "dapo"}}})
    assert cfg.rollout.engine.type == "vllm" and cfg.rollout.engine.dtype == "float32"
    assert RunConfig().rollout.engine.type == "transformers" and RunConfig().rollout.engine.torch_threads == 1
    assert cfg.learner.loss.algorithm == "dapo" and cfg.learner.optim.lr == 1e-3
    assert cfg.reward.swe.limits == SWE_LIMITS and cfg.reward.sandbox.memory_mb == 512
    swe = SandboxConfig(uid_base=5000).with_limits(SWE_LIMITS)
    assert (swe.uid_base, swe.memory_mb, swe.cpu_s) == (5000, 2048, 600)
    with pytest.raises(ValueError, match="tis_cap needs"):
        LossConfig(tis_cap=2.0)


def _fields(model):
    for name, field in model.model_fields.items():
        yield model.__name__, name, field
        ann = field.annotation
        for sub in getattr(ann, "__args__", ()) or (ann,):
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                yield from _fields(sub)


def test_every_config_field_is_documented():
    undocumented = [f"{m}.{n}" for m, n, f in _fields(RunConfig) if not f.description]
    assert undocumented == []


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_validate(path):
    RunConfig.load(path)


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learner:\n  lr: -1\n  batch_grups: 3\n")
    with pytest.raises(Exception) as info:
        RunConfig.load(bad)
    text = str(info.value)
    assert "learner.lr" in text and "learner.batch_grups" in text


def test_tracking_is_a_list_of_backends_or_a_section(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("tracking: [tensorboard, mlflow]\neval: {every_steps: 50, datasets: [task, gsm8k, rg:leg_counting]}\n")
    cfg = RunConfig.load(path)
    assert cfg.tracking.backends == ["tensorboard", "mlflow"] and cfg.tracking.wandb_mode == "offline"
    assert cfg.eval.every_steps == 50 and cfg.eval.datasets == ["task", "gsm8k", "rg:leg_counting"]
    path.write_text("tracking: {backends: [wandb], wandb_mode: online, samples_every: 0}\n")
    assert RunConfig.load(path).tracking.model_dump()["samples_every"] == 0
    assert RunConfig().tracking.backends == [] and RunConfig().eval.every_steps == 0  # both off by default

"""An agent episode's token stream, exactly: a scripted multi-turn exchange run by the episode loop
against the real sandbox (a workspace per episode, graded diff read back), with the real tiny
tokenizer. The policy's turns are scripted (`ScriptedEngine`: the transformers engine with its
sampling replaced by fixed turns, versions and logprobs) so the test can state every token; the
tiny model's own sampling is exercised in tests/e2e/test_agent_swe.py.

Also: infrastructure errors are retried with a fresh workspace and then flagged (never a zero),
and the sandbox is gone after every episode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relayrl.config import RunConfig, TinyModelConfig
from relayrl.model.tiny import init_tiny
from relayrl.reward.sandbox import Sandbox
from relayrl.rollout.engine import Completion, TransformersEngine
from relayrl.rollout.episode import EpisodeRunner
from relayrl.rollout.tools import PLAIN
from relayrl.rollout.workspaces import WorkspacePool
from relayrl.wire import common_pb2
from tests.integration.agent_helpers import sandbox_processes

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "examples" / "swe-mini" / "roman-numerals"

TURNS = [  # (text, ends with EOS, version)
    ('Let me look.\n<tool_call>\n{"name": "view", "arguments": {"path": "romans/convert.py", "end": 2}}\n'
     "</tool_call>", True, 3),
    ('<tool_call>{"name": "bash", "arguments": {"command": "echo fixed > NOTES && cat NOTES"}}</tool_call>', False, 4),
    ('<tool_call>{"name": "rm_rf"}</tool_call>', True, 4),
    ('<tool_call>{"name": "submit", "arguments": {}}</tool_call>', True, 5),
]


class ScriptedEngine(TransformersEngine):
    """The transformers engine (its tokenizer, encode, EOS) whose turns are scripted: turn k of an
    episode (k = observations in its sequence so far) is TURNS[k], with logprob -(k + 1) / 10 per
    token and TURNS[k]'s version."""

    def __init__(self, model_dir: str, turns=TURNS) -> None:
        super().__init__(model_dir)
        self.turns, self.calls = turns, []

    def generate_from_ids(self, sequences, sampling, max_new_tokens, stop=(), seed=None, between=None, update_every=0):
        self.calls.append([list(s) for s in sequences])
        out = []
        for seq in sequences:
            k = self.tokenizer.decode(seq).count(PLAIN[0].strip())
            text, eos, version = self.turns[k]
            ids = self.encode_continuation(text) + ([self.eos_id] if eos else [])
            out.append(Completion(list(seq), ids, [-(k + 1) / 10] * len(ids), [version] * len(ids), text, "stop"))
        return out


@pytest.fixture(scope="module")
def ascii_model(tmp_path_factory):
    return init_tiny(tmp_path_factory.mktemp("ascii") / "model",
                     TinyModelConfig(alphabet="ascii", max_position_embeddings=4096))


def config(**agent) -> RunConfig:
    return RunConfig.parse({"task": {"agent": {"warm_workspaces": 0, **agent}},
                            "rollout": {"prompts_per_batch": 1, "sampling": {"group_size": 2}}})


def prompt(text: str = "Fix the roman numerals.") -> common_pb2.Prompt:
    return common_pb2.Prompt(prompt_id="p0", text=text, kind="swe", reference=str(TASK))


def test_the_token_stream_and_loss_mask_of_a_scripted_exchange_are_exact(ascii_model):
    engine = ScriptedEngine(str(ascii_model))
    runner = EpisodeRunner.create(config(), engine)
    try:
        group = runner.run([prompt()])[0]
    finally:
        runner.close()
    assert sandbox_processes() == [], "a workspace outlived its episode"
    lines = (TASK / "repo" / "romans" / "convert.py").read_text().splitlines()
    observations = [
        "".join(f"{n:6}\t{lines[n - 1]}\n" for n in (1, 2)),
        "exit code 0\nfixed\n",
        "error: Unknown tool 'rm_rf'; the tools are: bash, view, create, str_replace, submit.",
    ]
    ids, mask, versions, logprobs = [], [], [], []
    for k, (text, eos, version) in enumerate(TURNS):
        turn = engine.encode_continuation(text) + ([engine.eos_id] if eos else [])
        ids += turn
        mask += [1] * len(turn)
        versions += [version] * len(turn)
        logprobs += [-(k + 1) / 10] * len(turn)
        if k < len(observations):
            obs = engine.encode_continuation(PLAIN[0] + observations[k] + PLAIN[1])
            ids += obs
            mask += [0] * len(obs)
            versions += [version] * len(obs)  # the version of the turn it answers
            logprobs += [0.0] * len(obs)
    for c in group:
        assert c.prompt_token_ids == engine.encode("Fix the roman numerals.")
        assert engine.tokenizer.decode(c.token_ids) == engine.tokenizer.decode(ids)
        assert c.token_ids == ids
        assert c.loss_mask == mask
        assert c.versions == versions
        assert c.logprobs == pytest.approx(logprobs)
        assert (c.finish_reason, c.turns, c.infra_error) == ("submit", 4, "")
        assert c.text == "diff --git a/NOTES b/NOTES\nnew file mode 100644\nindex 0000000..eaaa2f8\n--- /dev/null\n" \
                         "+++ b/NOTES\n@@ -0,0 +1 @@\n+fixed\n"
    # token in / token out: each turn continued the episode's own ids, never a re-tokenised text
    assert [len(call) for call in engine.calls] == [2] * 4
    assert engine.calls[3][0] == group[0].prompt_token_ids + ids[:len(ids) - len(engine.encode_continuation(TURNS[3][0])) - 1]
    stats = runner.stats
    assert (stats.episodes, stats.turns, stats.in_flight) == (2, 8, 0)
    assert stats.tool_calls == {("view", "ok"): 2, ("bash", "ok"): 2, ("none", "malformed"): 2, ("submit", "ok"): 2}


def test_limits_end_an_episode_and_its_last_call_still_counts(ascii_model):
    engine = ScriptedEngine(str(ascii_model))
    runner = EpisodeRunner.create(config(max_turns=2), engine)
    try:
        group = runner.run([prompt()])[0]
    finally:
        runner.close()
    c = group[0]
    assert (c.finish_reason, c.turns) == ("max_turns", 2)
    assert "+fixed" in c.text  # the second turn's command ran although no turn read its output
    assert c.loss_mask[-1] == 1  # the stream ends with the model's turn, no observation after it


def test_a_workspace_that_cannot_be_prepared_is_retried_then_flagged(ascii_model):
    cfg = config(max_attempts=2)
    cfg.reward.sandbox.python = "/usr/bin/no-such-python"
    engine = ScriptedEngine(str(ascii_model))
    runner = EpisodeRunner.create(cfg, engine)
    try:
        group = runner.run([prompt()])[0]
    finally:
        runner.close()
    assert engine.calls == []  # no turn was generated: the episodes never started
    for c in group:
        assert c.finish_reason == "infra_error" and c.token_ids == [] and c.loss_mask == []
        assert "the sandbox" in c.infra_error or "workspace" in c.infra_error
    assert runner.stats.infra_retries == 2
    assert sandbox_processes() == []


def test_a_task_that_does_not_load_is_flagged_for_every_episode(ascii_model, tmp_path):
    engine = ScriptedEngine(str(ascii_model))
    runner = EpisodeRunner.create(config(), engine)
    try:
        group = runner.run([common_pb2.Prompt(prompt_id="p", text="x", kind="swe",
                                              reference=json.dumps({"task": str(tmp_path / "none")}))])[0]
    finally:
        runner.close()
    assert [c.infra_error.split(":")[0] for c in group] == ["bad SWE task"] * 2


def test_an_episode_spans_weight_versions_with_the_real_engine(ascii_model):
    """The tiny model's own sampling (a random model: every turn a malformed call, answered by an
    error observation); a new version is loaded before the second turn, as the actor's weight
    following does: each turn's tokens carry the version that sampled them."""
    engine = TransformersEngine(str(ascii_model))
    state = {k: v.clone() for k, v in engine.model.state_dict().items()}
    loads = []

    def follow():  # the actor's follow_weights: the learner announced version 7 after the first turn
        if len(loads) == 1:
            engine.load_weights(state, 7)
        loads.append(engine.version)

    cfg = config(max_turns=3, max_turn_tokens=12)
    pool = WorkspacePool(Sandbox(cfg.reward.sandbox.with_limits(cfg.reward.swe.limits)), cfg.reward.sandbox.python, 0)
    runner = EpisodeRunner(cfg, engine, pool, follow=follow)
    try:
        group = runner.run([prompt()])[0]
    finally:
        runner.close()
    assert loads == [0, 7, 7]
    for c in group:
        assert (c.finish_reason, c.turns) == ("max_turns", 3)
        turns, k = [], 0
        while k < len(c.loss_mask):  # the stream's runs of model tokens and of observation tokens
            j = k
            while j < len(c.loss_mask) and c.loss_mask[j] == c.loss_mask[k]:
                j += 1
            turns.append((c.loss_mask[k], set(c.versions[k:j]), c.logprobs[k:j]))
            k = j
        assert [(m, v) for m, v, _ in turns] == [(1, {0}), (0, {0}), (1, {7}), (0, {7}), (1, {7})]
        assert all(lp < 0 for m, _, lps in turns if m for lp in lps)
        assert all(lp == 0 for m, _, lps in turns if not m for lp in lps)
        text = engine.tokenizer.decode(c.token_ids)
        assert text.count("error: ") == 2
    assert sandbox_processes() == []

"""Token-budget micro-batches: rows cut by padded tokens change no gradient and bound every forward."""

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM

from relayrl.config import LossConfig
from relayrl.learner.spec import resolve
from relayrl.learner.tokens import micro_batches
from relayrl.learner.update import Rows, prepare, update
from tests.integration.test_resume import groups


def test_micro_batches_pack_sorted_rows_within_the_budget():
    lengths = [3, 10, 4, 9, 2, 30]
    parts = micro_batches(lengths, max_tokens=20)
    assert sorted(i for p in parts for i in p) == list(range(6))  # every row once
    assert parts[0] == [5]  # longer than the budget on its own: a micro-batch of one
    for part in parts[1:]:
        assert len(part) * max(lengths[i] for i in part) <= 20
    assert parts[1:] == [[1, 3], [2, 0, 4]]  # 2 x 10, then 3 x 4
    assert micro_batches(lengths, max_tokens=20, max_rows=1) == [[5], [1], [3], [2], [0], [4]]
    assert micro_batches(lengths, max_rows=4) == [[0, 1, 2, 3], [4, 5]]  # by rows: order kept
    assert micro_batches(lengths) == [[0, 1, 2, 3, 4, 5]]


def _rows_of_mixed_lengths(spec) -> Rows:
    rows = prepare(groups(4, seed=5), spec)  # 16 rows of 5-7 tokens
    for k in range(0, len(rows.rows), 5):  # some long responses among the short ones
        prompt, completion, logps, mask = rows.rows[k]
        assert mask == []  # a single completion: every token is the model's
        rows.rows[k] = (prompt, completion + [7] * 20, logps + [-2.5] * 20, mask)
        rows.lengths[k] += 20
    return rows


@pytest.mark.parametrize("algorithm,objective", [("grpo", "decoupled"), ("dr_grpo", "naive")])
def test_token_budget_changes_no_gradient_and_bounds_each_forward(tiny_model_dir, algorithm, objective):
    spec = replace(resolve(LossConfig(algorithm=algorithm, kl_beta=0.05), 32), objective=objective)
    rows = _rows_of_mixed_lengths(spec)
    longest = max(len(p) + len(c) for p, c, *_ in rows.rows)
    budget = 2 * longest
    results = []
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    for tokens in (None, budget):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
        seen: list[int] = []
        model.register_forward_pre_hook(lambda m, a, kw, seen=seen: seen.append(kw["input_ids"].numel()), with_kwargs=True)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        stats = update(model, opt, None, rows, spec, 1.0, 0, 1.0, minibatches=2, ref_model=ref,
                       micro_batch_tokens=tokens)
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}  # the last minibatch's gradient
        results.append((model.state_dict(), grads, stats, seen))
    (w_whole, g_whole, s_whole, seen_whole), (w_cut, g_cut, s_cut, seen_cut) = results
    assert max(seen_cut) <= budget < max(seen_whole)  # every forward within the budget; unsplit it is not
    assert len(seen_cut) > len(seen_whole)
    for name, grad in g_whole.items():
        torch.testing.assert_close(g_cut[name], grad, rtol=0, atol=1e-6, msg=name)
    # two AdamW steps: g / sqrt(v) enlarges the float32 summation-order differences of near-zero
    # gradients (compared above at 1e-6) to ~1e-5, a hundredth of what the steps moved the weights
    for name, tensor in w_whole.items():
        torch.testing.assert_close(w_cut[name], tensor, rtol=0, atol=5e-5, msg=name)
    assert max(float((t - initial[n]).abs().max()) for n, t in w_whole.items()) > 1e-3  # the update is real
    for name in ("loss", "entropy", "clip_frac", "kl", "mismatch_kl", "ess", "grad_norm"):
        assert s_cut[name] == pytest.approx(s_whole[name], rel=1e-4, abs=1e-6), name
    # padding-aware: the cut computes fewer padded tokens than one rectangle over the whole minibatch
    assert sum(seen_cut) < sum(seen_whole)

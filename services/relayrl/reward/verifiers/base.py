"""The verifier boundary: what every task kind's verifier is, and the `Score` it returns.

A group's prompt carries its task kind ("math", "code", "swe"), so a new kind is a new `Verifier`
subclass (a module beside this one) and a line in `registry.VERIFIERS`, with no change to the
protocol or the service. Every verifier returns one of DESIGN.md's three outcomes: `pass` (the
answer was judged correct), `fail` (the model's fault) or `infra_error` (the verifier itself
broke or ran out of time: the service retries it, and the learner never trains on it as a fake
zero). A verifier also says how many threads its kind's lane gets by default (`lane_workers`),
so the generic service never names a kind.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from relayrl.wire import common_pb2

OutcomeName = Literal["pass", "fail", "infra_error"]

OUTCOMES: dict[str, int] = {
    "pass": common_pb2.OUTCOME_PASS,
    "fail": common_pb2.OUTCOME_FAIL,
    "infra_error": common_pb2.OUTCOME_INFRA_ERROR,
}


@dataclass
class Score:
    """What a verifier says about one response."""

    outcome: OutcomeName
    """pass / fail / infra_error (DESIGN.md's three outcomes)."""
    reward: float
    """The weighted reward the learner trains on (0 for an infrastructure error)."""
    components: dict[str, float] = field(default_factory=dict)
    """Each reward component before weighting ("accuracy", "format", ...)."""
    details: dict = field(default_factory=dict)
    """What was extracted, why it failed; JSON-serialisable."""
    duration_s: float = 0.0
    """Seconds spent scoring (filled by whoever timed it)."""

    @classmethod
    def infra_error(cls, reason: str, **details) -> Score:
        return cls("infra_error", 0.0, {}, {"error": reason, **details})

    def to_proto(self) -> common_pb2.Score:
        return common_pb2.Score(
            outcome=OUTCOMES[self.outcome], reward=float(self.reward),
            components={k: float(v) for k, v in self.components.items()},
            details=json.dumps(self.details, default=str, ensure_ascii=False),
            duration_s=float(self.duration_s))

    @classmethod
    def from_proto(cls, msg: common_pb2.Score) -> Score:
        names = {v: k for k, v in OUTCOMES.items()}
        if msg.outcome not in names:
            raise ValueError(f"score has no outcome (enum value {msg.outcome})")
        details = json.loads(msg.details) if msg.details else {}
        return cls(names[msg.outcome], msg.reward, dict(msg.components), details, msg.duration_s)

    def to_dict(self) -> dict:
        """As a JSON-serialisable dict (the slow lane's results); `from_dict` reads it back."""
        return {"outcome": self.outcome, "reward": self.reward, "components": self.components,
                "details": self.details, "duration_s": self.duration_s}

    @classmethod
    def from_dict(cls, data: dict) -> Score:
        return cls(data["outcome"], data["reward"], data["components"], data["details"], data["duration_s"])


class Verifier(ABC):
    """Scores responses of one task kind; `score` is thread-safe and never raises for bad input
    (a malformed response is a `fail`, a broken verifier an `infra_error`)."""

    kind: str

    @abstractmethod
    def score(self, response: str, reference: str) -> Score:
        """Judge `response` against `reference` (a gold answer, a test spec)."""

    def close(self) -> None:
        """Release worker processes and other resources."""

    def health(self) -> dict:
        """What this verifier runs on (for health and logs); JSON-serialisable."""
        return {}

    def unavailable(self) -> str | None:
        """Why this verifier refuses work on this host (e.g. no sandbox), or None when it can score."""
        return None

    def lane_workers(self) -> int:
        """Threads of this kind's lane in the reward service when `reward.lanes.<kind>.workers`
        is 0 (its default)."""
        return 4


class SandboxedVerifier(Verifier):
    """A verifier that runs untrusted code in `self.sandbox` (relayrl.reward.sandbox) on
    `self.concurrency` job slots: its health is the sandbox's, and it refuses work where the
    sandbox is unavailable (no bubblewrap and no explicit permission for a weaker mode)."""

    sandbox: object
    concurrency: int

    def health(self) -> dict:
        return {**self.sandbox.health(), "concurrency": self.concurrency}

    def unavailable(self) -> str | None:
        if self.sandbox.mode == "unavailable":  # the sandbox's own reason: no bwrap, or bwrap cannot isolate here
            return self.sandbox.reason
        return None


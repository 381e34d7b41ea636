"""Which verifier scores which task kind: one explicit table, read by the reward service and the
slow lane's workers.

A new kind is a `Verifier` subclass in a module beside this one and a line here; nothing
registers itself on import. Importing this module imports every verifier module (prometheus
metrics, the sandbox wrapper; no math-verify, gRPC or torch), so only the processes that score
import it, never `relayrl --help`.
"""

from __future__ import annotations

from relayrl.config import RewardConfig
from relayrl.reward.verifiers.base import Verifier
from relayrl.reward.verifiers.code import CodeVerifier
from relayrl.reward.verifiers.math import MathVerifier
from relayrl.reward.verifiers.swe import SweVerifier

VERIFIERS: dict[str, type[Verifier]] = {
    "math": MathVerifier,
    "code": CodeVerifier,
    "swe": SweVerifier,
}
"""Task kind -> the verifier class that scores it (built with the run's `RewardConfig`)."""


def kinds() -> list[str]:
    """The task kinds a reward service scores, sorted."""
    return sorted(VERIFIERS)


def create(kind: str, cfg: RewardConfig) -> Verifier:
    """Build the verifier of `kind`; KeyError names the known kinds when there is none."""
    if kind not in VERIFIERS:
        raise KeyError(f"no verifier for kind {kind!r} (known: {', '.join(kinds())})")
    return VERIFIERS[kind](cfg)

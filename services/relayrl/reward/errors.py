"""The reward service's typed errors, in one module every part of `relayrl.reward` imports.

Two families. *Come back later* (`TransientError`, so `relayrl.retry.is_transient` retries
them): `Saturated` (too many samples in flight: gRPC RESOURCE_EXHAUSTED) and `Closed` (the
service is shutting down: gRPC UNAVAILABLE); the service raises them, the gRPC server maps them
to status codes and the gRPC client maps those codes back, so a caller holding either client sees
the same exceptions. *The data is wrong* (`ValueError`s): `Refused` (a
group the service will not score, its prompt dead-lettered), `SpecError` (a code prompt's test spec)
and `TaskError` (a SWE task directory or manifest); the verifiers score such a sample as an
`infra_error` (the data's fault, never the model's) and the CLI prints the message.

This module imports nothing from `relayrl.reward`, so the service, its server, its clients and
the verifiers can all depend on it without depending on each other.
"""

from __future__ import annotations

from relayrl.retry import TransientError


class Saturated(TransientError):
    """Too many groups in flight; retry later (gRPC RESOURCE_EXHAUSTED)."""


class Closed(TransientError):
    """The service is shutting down (gRPC UNAVAILABLE)."""


class Refused(ValueError):
    """The reward service will not score this group (an unknown or disabled kind, a task that does not
    load); its prompt went to the dead-letter stream (gRPC INVALID_ARGUMENT)."""


class SpecError(ValueError):
    """A code prompt's test spec is malformed (a data error)."""


class TaskError(ValueError):
    """A SWE task directory or manifest is malformed (a data error, not the model's fault)."""

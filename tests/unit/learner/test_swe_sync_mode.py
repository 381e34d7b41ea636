"""`mode: sync`, the lock-step baseline the async benchmark compares against: the learner admits
the next batch only when the last one is trained; a dropped group is replaced, nothing more."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from relayrl.config import RunConfig
from relayrl.learner.intake import Admission


def test_sync_admits_one_batch_at_a_time():
    a = Admission(batch=4, max_staleness=3, sync=True)
    assert a.room() == 4
    a.admitted += 4
    assert a.room() == 0  # generating and scoring batch 1: nothing more
    a.consumed += 1  # one group dropped (stale / infrastructure error): its replacement only
    assert a.room() == 1
    a.admitted += 1
    a.consumed += 4  # the batch is trained
    assert a.room() == 4


def test_async_keeps_max_staleness_batches_in_flight():
    a = Admission(batch=4, max_staleness=3)
    assert a.room() == 16
    a.admitted += 16
    a.consumed += 4
    assert a.room() == 4


def test_mode_is_validated():
    assert RunConfig().mode == "async"
    assert RunConfig.model_validate({"mode": "sync"}).mode == "sync"
    with pytest.raises(ValidationError, match="mode"):
        RunConfig.model_validate({"mode": "lockstep"})

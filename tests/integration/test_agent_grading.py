"""An agent episode's sample in the reward service: its final diff graded by the SWE verifier on the
slow lane (a fresh sandbox from the task's snapshot), and a sample the actor flagged as an
infrastructure error scored infra_error without being judged (never a zero)."""

from __future__ import annotations

import json
from pathlib import Path

from relayrl.config import RewardConfig
from relayrl.replay import RedisReplayQueue
from relayrl.reward.service import RewardService
from tests.integration.test_slow_lane import groups_written, make_group, results

RUN = "lane"
TASK = Path(__file__).resolve().parents[2] / "examples" / "swe-mini" / "roman-numerals"


def test_episode_diffs_are_graded_on_the_slow_lane_and_flagged_samples_are_not_judged(redis_url, wait_for):
    queue = RedisReplayQueue(redis_url)
    service = RewardService(RewardConfig.model_validate({"slow_lane": {
        "kinds": ["swe"], "service_workers": 1, "lease_s": 5.0, "poll_s": 0.1, "concurrency": 2}}), queue, RUN)
    try:
        gold = (TASK / "gold.patch").read_text()
        group = make_group("g-agent", [gold, "", "ignored"], kind="swe", reference=str(TASK))
        group.samples[2].infra_error = "the sandbox did not start"
        assert service.submit(group)
        written = wait_for(lambda: groups_written(queue), 120, "the scored group")[0]
    finally:
        service.close(drain=False)
    outcomes = [common.outcome for common in written.scores]
    assert outcomes == [1, 2, 3]  # pass, fail (an empty diff), infra_error
    flagged = json.loads(written.scores[2].details)
    assert flagged["error"] == "the episode did not run: the sandbox did not start"
    # only the two unflagged samples became slow-lane jobs; the gold diff's tests really ran
    jobs = results(redis_url)
    assert sorted(j["index"] for j in jobs) == [0, 1]
    passed = next(j for j in jobs if j["index"] == 0)["score"]["details"]
    assert passed["apply"]["ok"] and passed["resolved"] and isinstance(passed["sandbox_s"], float)

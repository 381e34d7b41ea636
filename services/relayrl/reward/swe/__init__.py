"""SWE rewards: apply a model's patch to a repository and run its tests, in the sandbox.

- `task`: the task format (`task.json` + `repo/`) and the JSONL manifest loader (docs/swe-tasks.md);
- `patch`: the patch extracted from a response (a ```diff block or a raw unified diff);
- `workspace`: cached snapshots of task repositories, shipped into the sandbox as one archive;
- `harness`: the trusted program inside the sandbox (apply, restore test files, run pytest);
- `grading`: the verdict by test id from pytest's JUnit XML report, never from stdout.

The "swe" `Verifier` that puts these together lives with the other verifiers
(`relayrl.reward.verifiers.swe`); the slow lane's workers (`relayrl.reward.worker`) run it.

Import the submodules directly; this package stays light.
"""

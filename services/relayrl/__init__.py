"""relayrl: reinforcement learning from verifiable rewards as independent services.

Rollout actors, a reward service and a learner overlap generation, reward evaluation and
training, with Redis streams as the replay queue (see docs/design.md).
"""

__version__ = "0.1.0"

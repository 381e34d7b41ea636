"""Verifiers, one module per task kind: `base` (the `Verifier` boundary, `Score` and its three
outcomes), `answer` (R1's format reward and answer extraction), `math`, `code`, `swe`, and
`registry` (the explicit kind -> verifier table the service builds from).

Import the submodules directly; this package imports nothing, so `relayrl --help` and modules
that only need `Score` do not pay for the verifiers.
"""

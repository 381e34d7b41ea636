"""The reward service: verifiers by task kind (math today; code and SWE plug in by kind), the
scoring core that turns submitted groups into scored groups on the replay queue, its gRPC server
and the clients that reach it in process or over the network.

Import the submodules directly (`relayrl.reward.service`, `.server`, `.client`): this package
stays light so `relayrl --help` does not pay for gRPC or math-verify.
"""

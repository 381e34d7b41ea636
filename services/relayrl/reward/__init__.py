"""The reward service: verifiers by task kind (`verifiers/`: math, code, swe), the scoring core
that turns submitted groups into scored groups on the replay queue (`service`), its gRPC server
(`server`), the clients that reach it in process or over the network (`client`), the slow lane
for long jobs and its workers (`slow_lane`, `worker`), and the typed errors they share (`errors`).

Import the submodules directly (`relayrl.reward.service`, `.server`, `.client`): this package
stays light so `relayrl --help` does not pay for gRPC or math-verify.
"""

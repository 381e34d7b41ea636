"""Hosts the untrusted program for assert tests: a case child of the zygote, inside the sandbox.

It executes the program, then answers calls of the entry point sent by the trusted checker over
two pipes, with values in the plain-data wire format. Everything here is in the candidate's
reach (the program can replace any of it, or write any bytes to the reply pipe): the only power
that gives it is to choose what its function returns or raises, which is what is being tested,
and the checker decodes every reply as hostile (`checker.py`, `wire.py`).
"""

import wire


def _exception(exc):
    return {"raise": [type(exc).__name__, str(exc)[:500]]}


def serve(requests, replies, setup):
    """Load the program, report whether that worked, then answer calls until the channel closes."""
    namespace = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        exec(compile(setup.get("prelude", "") + "\n" + setup["program"], "program.py", "exec"), namespace)
        function = namespace[setup["entry_point"]]
    except BaseException as exc:  # the program's own failure: report it, the checker fails the case
        wire.send(replies, _exception(exc))
        return
    wire.send(replies, {"ok": True})
    while True:
        try:
            call = wire.receive(requests)
        except EOFError:
            return
        try:
            args = [wire.decode(a) for a in call["args"]]
            kwargs = {k: wire.decode(v) for k, v in call["kwargs"].items()}
            reply = {"value": wire.encode(function(*args, **kwargs))}
        except BaseException as exc:  # reported to the checker as the call's exception
            reply = _exception(exc)
        wire.send(replies, reply)

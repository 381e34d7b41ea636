"""Hosts the untrusted program for assert tests (runs in its own process inside the sandbox).

It executes the program, then answers calls of the entry point sent by the trusted checker over
two pipes, with values in the plain-data wire format. Everything here is in the candidate's
reach (the program can replace any of it): the only power that gives it is to choose what its
function returns, which is exactly what is being tested.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire


def _exception(exc):
    return {"raise": [type(exc).__name__, str(exc)[:500]]}


def main():
    requests, replies = int(sys.argv[1]), int(sys.argv[2])
    setup = wire.receive(requests)
    namespace = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        exec(compile(setup["prelude"] + "\n" + setup["program"], "program.py", "exec"), namespace)
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


if __name__ == "__main__":
    main()

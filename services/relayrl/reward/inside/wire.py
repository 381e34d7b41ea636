"""The value format between the untrusted candidate process and the trusted checker (stdlib only).

Only plain data crosses: None, bool, int, float, complex, str, bytes and lists, tuples, dicts,
sets and frozensets of them, each matched by its *exact* type, so a subclass with an `__eq__`
that is always true, or any other object, arrives as `Opaque`, which refuses every comparison,
truth test, hash and iteration: a test that looks at it fails. Messages are JSON (parsing JSON
runs no code, unlike pickle) framed by a 4-byte length and capped in size and nesting depth.
"""

import json
import struct

MAX_MESSAGE = 16 << 20
MAX_DEPTH = 64


class Opaque:
    """A value the candidate returned that is not plain data; every use of it raises."""

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return "<opaque %s from the candidate>" % self.type_name

    def _refuse(self, *args):
        raise TypeError("the candidate returned a %s, which is not plain data" % self.type_name)

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = __len__ = _refuse
    __iter__ = __contains__ = __getitem__ = __float__ = __int__ = __index__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __abs__ = _refuse


def encode(value, depth=0):
    """Plain data as JSON-ready tagged values (exact types only)."""
    if depth > MAX_DEPTH:
        return {"opaque": "too deeply nested value"}
    t = type(value)
    if value is None or t is bool:
        return value
    if t is int:
        return {"i": str(value)} if abs(value) < 10 ** 4000 else {"opaque": "huge int"}
    if t is float:
        return {"f": repr(value)}
    if t is str:
        return {"s": value}
    if t is bytes:
        return {"b": value.hex()}
    if t is complex:
        return {"c": [repr(value.real), repr(value.imag)]}
    if t in (list, tuple, set, frozenset):
        tag = {list: "l", tuple: "t", set: "set", frozenset: "fs"}[t]
        return {tag: [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    return {"opaque": t.__name__}


def decode(data):
    """The inverse of `encode`; unknown tags are errors, hashing failures become Opaque."""
    if data is None or type(data) is bool:
        return data
    (tag, body), = data.items()
    if tag == "i":
        return int(body)
    if tag == "f":
        return float(body)
    if tag == "s":
        return str(body)
    if tag == "b":
        return bytes.fromhex(body)
    if tag == "c":
        return complex(float(body[0]), float(body[1]))
    if tag == "l":
        return [decode(v) for v in body]
    if tag == "t":
        return tuple(decode(v) for v in body)
    if tag in ("set", "fs"):
        items = [decode(v) for v in body]
        try:
            return set(items) if tag == "set" else frozenset(items)
        except TypeError:
            return Opaque("unhashable set member")
    if tag == "d":
        try:
            return {decode(k): decode(v) for k, v in body}
        except TypeError:
            return Opaque("unhashable dict key")
    if tag == "opaque":
        return Opaque(str(body))
    raise ValueError("unknown wire tag %r" % tag)


def send(fd, message):
    """Write one framed JSON message to a file descriptor."""
    import os

    data = json.dumps(message).encode()
    if len(data) > MAX_MESSAGE:
        data = json.dumps({"raise": ["ValueError", "message too large"]}).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def _read_exact(fd, n, deadline):
    import os
    import select
    import time

    chunks, got = [], 0
    while got < n:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError("no reply before the deadline")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError("no reply before the deadline")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(fd, deadline=None):
    """Read one framed JSON message (EOFError on a closed channel, TimeoutError at `deadline`)."""
    (size,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
    if size > MAX_MESSAGE:
        raise ValueError("message of %d bytes exceeds the cap" % size)
    return json.loads(_read_exact(fd, size, deadline))

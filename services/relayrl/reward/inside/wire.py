"""The value format between the untrusted candidate process and the trusted checker (stdlib only).

Only plain data crosses: None, bool, int, float, complex, str, bytes and lists, tuples, dicts,
sets and frozensets of them, each matched by its *exact* type, so a subclass with an `__eq__`
that is always true, or any other object, arrives as `Opaque`, which refuses every comparison,
truth test, hash and iteration: a test that looks at it fails. Messages are JSON (parsing JSON
runs no code, unlike pickle) framed by a 4-byte length and capped in size and nesting depth.

The checker decodes what the candidate sends as hostile input (the candidate process can write
any bytes to its reply pipe, not only what `encode` makes): `decode` is linear in the message's
size and raises `WireError` for anything malformed (an unknown tag, a body of the wrong type, an
integer past Python's 4300-digit conversion limit, nesting past `MAX_DEPTH`). Values that would
steer the checker's own code become `Opaque` instead of data: NaN (every ordered comparison with
it is False, so `assert not abs(got - want) > tol` would hold) and sets or dict keys whose hashes
collide (building them takes quadratic time). Infinities stay floats: their order is total.
"""

import json
import math
import struct

MAX_MESSAGE = 16 << 20
MAX_DEPTH = 64
MAX_SAME_HASH = 8
"""More members of one set (or keys of one dict) with the same hash than this: a collision attack."""


class WireError(ValueError):
    """A message from the candidate that is not a well-formed value."""


class Opaque:
    """A value the candidate returned that is not plain data; every use of it raises."""

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return "<opaque %s from the candidate>" % self.type_name

    def _refuse(self, *args):
        raise TypeError("the candidate returned a %s, which is not plain data" % self.type_name)

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = __len__ = _refuse
    __iter__ = __contains__ = __getitem__ = __float__ = __int__ = __index__ = __complex__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __abs__ = _refuse
    __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = _refuse
    __neg__ = __pos__ = __round__ = __trunc__ = __floor__ = __ceil__ = _refuse


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


def _float(body):
    if type(body) is not str or len(body) > 64:
        raise WireError("a float must be a short string")
    try:
        return float(body)
    except ValueError:
        raise WireError("not a float: %r" % body[:64]) from None


def _collide(items):
    """True when more than MAX_SAME_HASH items share one hash (TypeError: unhashable)."""
    counts = {}
    for item in items:
        h = hash(item)
        counts[h] = counts.get(h, 0) + 1
        if counts[h] > MAX_SAME_HASH:
            return True
    return False


def _list(body):
    if type(body) is not list:
        raise WireError("a container body must be a list")
    return body


def decode(data, depth=0):
    """The inverse of `encode` for hostile input: WireError when malformed, Opaque for values
    that are not inert data (see the module's docstring)."""
    if depth > MAX_DEPTH + 1:
        raise WireError("value nested deeper than %d" % MAX_DEPTH)
    if data is None or type(data) is bool:
        return data
    if type(data) is not dict or len(data) != 1:
        raise WireError("a value must be a one-key object")
    (tag, body), = data.items()
    if tag == "i":
        if type(body) is not str or len(body) > 4100:
            raise WireError("an int must be a decimal string of at most 4100 characters")
        try:
            return int(body)
        except ValueError:
            raise WireError("not an int") from None
    if tag == "f":
        value = _float(body)
        return Opaque("NaN") if math.isnan(value) else value
    if tag == "s":
        if type(body) is not str:
            raise WireError("a str must be a string")
        return body
    if tag == "b":
        if type(body) is not str:
            raise WireError("bytes must be a hex string")
        try:
            return bytes.fromhex(body)
        except ValueError:
            raise WireError("not hex") from None
    if tag == "c":
        if type(body) is not list or len(body) != 2:
            raise WireError("a complex must be two floats")
        value = complex(_float(body[0]), _float(body[1]))
        return Opaque("complex NaN") if math.isnan(value.real) or math.isnan(value.imag) else value
    if tag == "l":
        return [decode(v, depth + 1) for v in _list(body)]
    if tag == "t":
        return tuple(decode(v, depth + 1) for v in _list(body))
    if tag in ("set", "fs"):
        items = [decode(v, depth + 1) for v in _list(body)]
        try:
            if _collide(items):
                return Opaque("set of colliding hashes")
            return set(items) if tag == "set" else frozenset(items)
        except TypeError:
            return Opaque("unhashable set member")
    if tag == "d":
        pairs = []
        for pair in _list(body):
            if type(pair) is not list or len(pair) != 2:
                raise WireError("a dict item must be a [key, value] pair")
            pairs.append((decode(pair[0], depth + 1), decode(pair[1], depth + 1)))
        try:
            if _collide(k for k, _ in pairs):
                return Opaque("dict of colliding key hashes")
            return dict(pairs)
        except TypeError:
            return Opaque("unhashable dict key")
    if tag == "opaque":
        return Opaque(str(body)[:100])
    raise WireError("unknown wire tag %r" % str(tag)[:20])


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
    """Read one framed JSON message (EOFError on a closed channel, TimeoutError at `deadline`,
    WireError when it is not a JSON object within the caps)."""
    (size,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
    if size > MAX_MESSAGE:
        raise WireError("message of %d bytes exceeds the cap" % size)
    raw = _read_exact(fd, size, deadline)
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested past the parser's stack
        raise WireError("not JSON: %s" % type(exc).__name__) from None
    if type(message) is not dict:
        raise WireError("a message must be a JSON object")
    return message

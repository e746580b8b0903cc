"""A pickle reader that runs nothing: it reads CIFAR's "python version" batch files.

Python's `pickle` calls whatever a file names.  This reader walks the opcodes
(read with `pickletools`' argument parsers) with a small stack machine that builds only
dicts, lists, tuples, bytes, str, ints, booleans and None, and NumPy integer
arrays written the way NumPy pickles them (`_reconstruct(ndarray, (0,), b"b")`
then the array's state, and `dtype(name)` then its byte order).  No global is
imported or called: the four names NumPy's pickles use are recognized by name
and every other one — `os.system`, `builtins.exec`, a class with a
`__reduce__` — is refused before anything could run.  An array's bytes must be
exactly its shape times its item size, so a small file cannot ask for a large
allocation.
"""

from __future__ import annotations

import codecs
import io
import math
import pickletools
from typing import Any, Dict, List

import numpy as np

_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
}
_DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8")
_BYTE_ORDERS = {"|": "=", "=": "=", "<": "<", ">": ">"}
_MAX_DIMS = 8
_VALUES = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_ARG_VALUES = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "UNICODE",
                         "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES",
                         "SHORT_BINBYTES", "BINBYTES8"})
_PY2_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})   # Python 2 str: bytes
_IGNORED = frozenset({"PROTO", "FRAME", "STOP"})


class Refused(ValueError):
    """What the file asks for is not one of the things this reader builds."""


class _Global:
    """One of the recognized NumPy names; never the real object."""

    def __init__(self, kind: str):
        self.kind = kind


class _Dtype:
    """`numpy.dtype(name)` for an integer type, byte order from its state."""

    def __init__(self, name):
        name = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        if name not in _DTYPES:
            raise Refused(f"it asks for the dtype {name!r}; only integer arrays are read "
                          f"({', '.join(_DTYPES)})")
        self.dtype = np.dtype(name)

    def build(self, state) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) >= 2 else None
        order = order.decode("ascii", "replace") if isinstance(order, bytes) else order
        if order not in _BYTE_ORDERS:
            raise Refused(f"it gives a dtype the state {state!r}; expected (version, byte order, ...)")
        self.dtype = self.dtype.newbyteorder(_BYTE_ORDERS[order])


class _Array:
    """`_reconstruct(ndarray, (0,), b"b")`, then filled from its state by BUILD."""

    def __init__(self):
        self.array = None

    def build(self, state) -> None:
        if self.array is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Refused("it gives an array a state that is not NumPy's (version, shape, dtype, "
                          "fortran, bytes)")
        shape, dtype, fortran, raw = state[-4:]
        if (not isinstance(shape, tuple) or len(shape) > _MAX_DIMS
                or not all(type(n) is int and n >= 0 for n in shape)):
            raise Refused(f"it gives an array the shape {shape!r}")
        if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes) or fortran not in (0, 1):
            raise Refused("it gives an array a state whose dtype, order or data is not NumPy's")
        needed = math.prod(shape) * dtype.dtype.itemsize
        if len(raw) != needed:
            raise Refused(f"an array of shape {shape} ({dtype.dtype}) needs {needed} bytes, "
                          f"the file gives {len(raw)}")
        array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C")
        self.array = array.astype(array.dtype.newbyteorder("="))


class _Machine:
    """The stack, marks and memo of one pickle; `step` runs one opcode."""

    def __init__(self):
        self.stack: List[Any] = []
        self.marks: List[int] = []
        self.memo: Dict[int, Any] = {}

    def step(self, name: str, arg) -> None:
        if name in _VALUES:
            self.stack.append(_VALUES[name])
        elif name in _ARG_VALUES:
            self.stack.append(arg)
        elif name in _PY2_STRINGS:
            self.stack.append(arg.encode("latin-1"))     # what pickle.load(encoding="bytes") gives
        elif name not in _IGNORED:
            handler = _HANDLERS.get(name)
            if handler is None:
                raise Refused(f"it uses the pickle opcode {name}, which a CIFAR batch does not need")
            handler(self, arg)

    def pop_mark(self) -> list:
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def mark(self, _):
        self.marks.append(len(self.stack))

    def empty_dict(self, _):
        self.stack.append({})

    def dict_(self, _):
        items = self.pop_mark()
        self.stack.append({})
        self.setitems_from(items)

    def setitem(self, _):
        value = self.stack.pop()
        key = self.stack.pop()
        self.setitems_from([key, value])

    def setitems(self, _):
        self.setitems_from(self.pop_mark())

    def setitems_from(self, items: list) -> None:
        target = self.stack[-1]
        if not isinstance(target, dict) or len(items) % 2:
            raise Refused("it sets items on something that is not a dict")
        for key, value in zip(items[::2], items[1::2]):
            if type(key) not in (bytes, str, int):
                raise Refused(f"it uses a dict key of type {type(key).__name__}")
            target[key] = value

    def empty_list(self, _):
        self.stack.append([])

    def list_(self, _):
        self.stack.append(self.pop_mark())

    def append(self, _):
        value = self.stack.pop()
        self.extend_with([value])

    def appends(self, _):
        self.extend_with(self.pop_mark())

    def extend_with(self, items: list) -> None:
        if not isinstance(self.stack[-1], list):
            raise Refused("it appends to something that is not a list")
        self.stack[-1].extend(items)

    def tuple_(self, _):
        self.stack.append(tuple(self.pop_mark()))

    def tuple_n(self, count: int):
        items = tuple(self.stack[len(self.stack) - count:])
        if len(items) != count:
            raise IndexError("stack underflow")
        del self.stack[len(self.stack) - count:]
        self.stack.append(items)

    def put(self, index):
        self.memo[index] = self.stack[-1]

    def memoize(self, _):
        self.memo[len(self.memo)] = self.stack[-1]

    def get(self, index):
        self.stack.append(self.memo[index])

    def global_(self, arg):
        module, _, name = arg.partition(" ")
        self.stack.append(_recognized(module, name))

    def stack_global(self, _):
        name = self.stack.pop()
        module = self.stack.pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise Refused("it names a global with something that is not a string")
        self.stack.append(_recognized(module, name))

    def reduce(self, _):
        args = self.stack.pop()
        function = self.stack.pop()
        self.stack.append(_call(function, args))

    def build(self, _):
        state = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, (_Dtype, _Array)):
            raise Refused(f"it sets the state of a {type(target).__name__}")
        target.build(state)


_HANDLERS = {
    "MARK": _Machine.mark, "EMPTY_DICT": _Machine.empty_dict, "DICT": _Machine.dict_,
    "SETITEM": _Machine.setitem, "SETITEMS": _Machine.setitems, "EMPTY_LIST": _Machine.empty_list,
    "LIST": _Machine.list_, "APPEND": _Machine.append, "APPENDS": _Machine.appends,
    "TUPLE": _Machine.tuple_, "TUPLE1": lambda m, _: m.tuple_n(1), "TUPLE2": lambda m, _: m.tuple_n(2),
    "TUPLE3": lambda m, _: m.tuple_n(3), "PUT": _Machine.put, "BINPUT": _Machine.put,
    "LONG_BINPUT": _Machine.put, "MEMOIZE": _Machine.memoize, "GET": _Machine.get,
    "BINGET": _Machine.get, "LONG_BINGET": _Machine.get, "GLOBAL": _Machine.global_,
    "STACK_GLOBAL": _Machine.stack_global, "REDUCE": _Machine.reduce, "BUILD": _Machine.build,
}


def _recognized(module: str, name: str) -> _Global:
    kind = _GLOBALS.get((module, name))
    if kind is None:
        raise Refused(f"it asks for `{module}.{name}`, which is never loaded (only NumPy arrays, "
                      "dicts, lists, bytes, str and ints are read); the file may be damaged or "
                      "malicious")
    return _Global(kind)


def _call(function, args):
    """NumPy's two constructor calls, checked; nothing else is ever called."""
    if not isinstance(function, _Global) or not isinstance(args, tuple):
        raise Refused("it calls something that is not a recognized NumPy name")
    if function.kind == "dtype" and 1 <= len(args) <= 3:
        return _Dtype(args[0])
    if (function.kind == "reconstruct" and len(args) == 3 and isinstance(args[0], _Global)
            and args[0].kind == "ndarray" and args[1] == (0,) and args[2] in (b"b", "b")):
        return _Array()
    raise Refused(f"it calls numpy's {function.kind} with arguments NumPy's pickles never use")


def _finished(value):
    """Arrays in place of their recipes (in the top-level dict, where CIFAR keeps them)."""
    if isinstance(value, dict):
        return {key: _finished_one(item) for key, item in value.items()}
    return _finished_one(value)


def _finished_one(value):
    if isinstance(value, _Array):
        if value.array is None:
            raise Refused("it makes an array but never gives its data")
        return value.array
    if isinstance(value, (_Dtype, _Global)):
        raise Refused("it stores a bare NumPy name where data was expected")
    return value


def _opcodes(data: bytes):
    """(name, argument) of each opcode up to STOP, as `pickletools.genops` reads them — but a
    Python 2 text STRING is read as bytes (genops insists on ASCII)."""
    stream = io.BytesIO(data)
    while True:
        code = stream.read(1)
        opcode = pickletools.code2op.get(code.decode("latin-1"))
        if opcode is None:
            raise ValueError(f"unknown opcode {code!r} at byte {stream.tell() - 1}" if code
                             else "the pickle ends before its STOP")
        if opcode.name == "STRING":
            arg = _read_stringnl(stream)
        else:
            arg = opcode.arg.reader(stream) if opcode.arg is not None else None
        yield opcode.name, arg
        if opcode.name == "STOP":
            return


def _read_stringnl(stream) -> str:
    line = stream.readline()
    if not line.endswith(b"\n") or len(line) < 3 or line[0] not in b"'\"" or line[-2] != line[0]:
        raise ValueError("a STRING opcode without its quotes and newline")
    return codecs.escape_decode(line[1:-2])[0].decode("latin-1")


def load_restricted(data: bytes, source: str, function: str):
    """The object pickled in `data`, built without running anything (see the module's notes).

    Raises ValueError naming `function` and `source` for anything else, or a damaged pickle."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"load_restricted: argument `data` must be bytes, got {type(data).__name__}")
    machine = _Machine()
    try:
        for name, arg in _opcodes(bytes(data)):
            machine.step(name, arg)
        if len(machine.stack) != 1 or machine.marks:
            raise Refused("its opcodes do not leave exactly one object")
        return _finished(machine.stack[0])
    except Refused as error:
        raise ValueError(f"{function}: '{source}' is not a CIFAR python batch: {error}") from None
    except (ValueError, IndexError, KeyError, TypeError, UnicodeError) as error:
        raise ValueError(f"{function}: '{source}' is not a CIFAR python batch: the pickle is "
                         f"damaged ({type(error).__name__}: {error})") from None

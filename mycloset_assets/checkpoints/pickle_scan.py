"""A pass over a pickle's opcodes that bounds what unpickling it would cost, before anything is unpickled.

The C unpickler cannot be interrupted, and some pickles cost far more than their size: a memo index of 2**30
in a six-byte ``LONG_BINPUT`` makes it allocate gigabytes, a megabyte of ``EMPTY_SET`` opcodes makes two
hundred megabytes of sets, and a tuple nested a million deep crashes the interpreter when it is hashed as a
dict key. :func:`scan_pickle` walks the opcodes once, simulating only the stack's tuple nesting and the memo,
and charges an upper bound of every object's size to the file's :class:`~.bounds.Budget`; what the allowed
callables materialise at run time is charged by the unpickler itself (``pickles.py``).
"""

from __future__ import annotations

import pickle
import pickletools

from .bounds import Budget


class PickleTruncatedError(pickle.UnpicklingError):
    """The data ends before the pickle's STOP opcode."""


_OP_BYTES = 32
"""Charged for every opcode: its stack slot and its share of the container it ends up in."""

_LEAF, _TUPLE, _MARK_TUPLE, _MARK_NEW, _MARK_OBJ, _MARK_DROP, _DROP = range(7)
_CALL, _PERSID, _MARK, _GET, _PUT, _MEMOIZE, _DUP, _NOTHING, _STOP = range(7, 16)

_CATEGORIES: dict[str, tuple[int, int]] = {
    "TUPLE1": (_TUPLE, 1),
    "TUPLE2": (_TUPLE, 2),
    "TUPLE3": (_TUPLE, 3),
    "TUPLE": (_MARK_TUPLE, 0),
    "FROZENSET": (_MARK_TUPLE, 0),
    "LIST": (_MARK_NEW, 0),
    "DICT": (_MARK_NEW, 0),
    "OBJ": (_MARK_OBJ, 0),
    "INST": (_MARK_OBJ, 0),
    "APPENDS": (_MARK_DROP, 0),
    "SETITEMS": (_MARK_DROP, 0),
    "ADDITEMS": (_MARK_DROP, 0),
    "POP_MARK": (_MARK_DROP, 0),
    "APPEND": (_DROP, 1),
    "POP": (_DROP, 1),
    "BUILD": (_DROP, 1),
    "SETITEM": (_DROP, 2),
    "REDUCE": (_CALL, 2),
    "NEWOBJ": (_CALL, 2),
    "STACK_GLOBAL": (_CALL, 2),
    "NEWOBJ_EX": (_CALL, 3),
    "BINPERSID": (_PERSID, 1),
    "MARK": (_MARK, 0),
    "GET": (_GET, 0),
    "BINGET": (_GET, 0),
    "LONG_BINGET": (_GET, 0),
    "PUT": (_PUT, 0),
    "BINPUT": (_PUT, 0),
    "LONG_BINPUT": (_PUT, 0),
    "MEMOIZE": (_MEMOIZE, 0),
    "DUP": (_DUP, 0),
    "PROTO": (_NOTHING, 0),
    "FRAME": (_NOTHING, 0),
    "READONLY_BUFFER": (_NOTHING, 0),
    "STOP": (_STOP, 0),
}
_OBJECT_BYTES: dict[str, int] = {
    "EMPTY_LIST": 64,
    "LIST": 64,
    "EMPTY_DICT": 232,
    "DICT": 232,
    "EMPTY_SET": 216,
    "FROZENSET": 216,
    "TUPLE1": 48,
    "TUPLE2": 56,
    "TUPLE3": 64,
    "TUPLE": 48,
    "BININT": 32,
    "BININT2": 32,
    "INT": 32,
    "LONG": 32,
    "LONG1": 32,
    "LONG4": 32,
    "FLOAT": 24,
    "BINFLOAT": 24,
    "REDUCE": 512,
    "NEWOBJ": 512,
    "NEWOBJ_EX": 512,
    "OBJ": 512,
    "INST": 512,
    "BUILD": 512,
    "BINPERSID": 256,
    "PERSID": 256,
    "GLOBAL": 2048,
    "STACK_GLOBAL": 2048,
}
_TEXT = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
_LINE, _LEN1, _LEN4, _LEN4U, _LEN8 = (
    pickletools.UP_TO_NEWLINE,
    pickletools.TAKEN_FROM_ARGUMENT1,
    pickletools.TAKEN_FROM_ARGUMENT4,
    pickletools.TAKEN_FROM_ARGUMENT4U,
    pickletools.TAKEN_FROM_ARGUMENT8U,
)


def _table() -> list[tuple[int, int, int, int, int] | None]:
    """Per opcode byte: (category, argument kind, bytes charged, operand count, bytes charged per argument
    byte); None for bytes that are not opcodes."""
    table: list[tuple[int, int, int, int, int] | None] = [None] * 256
    for op in pickletools.opcodes:
        category, operand = _CATEGORIES.get(op.name, (_LEAF, 0))
        kind = 0 if op.arg is None else op.arg.n
        if op.name in ("GLOBAL", "INST"):
            kind = _TWO_LINES
        cost = _OP_BYTES + _OBJECT_BYTES.get(op.name, 0) + (64 if kind < 0 else 0)
        table[ord(op.code)] = (category, kind, cost, operand, 4 if op.name in _TEXT else 1)
    return table


_TWO_LINES = -100
_LONG_BINPUT, _BINGET, _BININT1 = pickle.LONG_BINPUT[0], pickle.BINGET[0], pickle.BININT1[0]
_TABLE = _table()
_LENGTH_BYTES = {_LEN1: 1, _LEN4: 4, _LEN4U: 4, _LEN8: 8}
_TIME_CHECK_BYTES = 1 << 20
_LONGEST_FIXED_ARGUMENT = 9
"""An opcode and its longest fixed-size argument (FRAME, BINFLOAT: 8 bytes): an access failing this close to the
end of the data is the data's end, not a malformed stream."""


def scan_pickle(data: bytes, budget: Budget, start: int = 0) -> int:
    """Check the pickle at ``data[start:]`` against ``budget``; returns the offset just after its STOP.

    Raises ``pickle.UnpicklingError`` for a malformed opcode stream and ``BoundExceededError`` when
    unpickling would exceed the memory budget or the tuple-nesting bound.
    """
    end = len(data)
    limit = budget.memory_limit - budget.memory
    max_depth = budget.bounds.depth
    table = _TABLE
    stack: list[int] = []
    push = stack.append
    marks: list[int] = []
    memo: dict[int, int] = {}
    cost = top_index = 0
    pos = start
    next_check = pos + _TIME_CHECK_BYTES
    try:
        while True:
            code = data[pos]
            if code == _LONG_BINPUT:
                index = int.from_bytes(data[pos + 1 : pos + 5], "little")
                memo[index] = stack[-1]
                pos += 5
                cost += _OP_BYTES
                if index > top_index:
                    cost += 16 * (index - top_index)
                    top_index = index
                    if cost > limit:
                        budget.charge_memory(cost, "unpickling the header")
                continue
            if code == _BINGET:
                push(memo[data[pos + 1]])
                pos += 2
                cost += _OP_BYTES
                continue
            if code == _BININT1:
                push(0)
                pos += 2
                cost += _OP_BYTES
                if cost > limit:
                    budget.charge_memory(cost, "unpickling the header")
                continue
            entry = table[code]
            if entry is None:
                raise pickle.UnpicklingError(f"unknown opcode {code:#04x} at byte {pos}")
            category, kind, opcost, operand, per_byte = entry
            pos += 1
            arg_start = pos
            cost += opcost
            if kind > 0:
                pos += kind
            elif kind == _LEN1:
                length = data[pos]
                pos += 1 + length
                cost += per_byte * length
            elif kind == _LEN4U:
                length = int.from_bytes(data[pos : pos + 4], "little")
                pos += 4 + length
                cost += per_byte * length
            elif kind:
                pos, length = _variable_argument(data, kind, pos, end)
                cost += per_byte * length
            if category == _LEAF:
                push(0)
            elif category in (_GET, _PUT):
                if kind == 1:
                    index = data[arg_start]
                elif kind == 4:
                    index = int.from_bytes(data[arg_start:pos], "little")
                else:
                    index = _text_index(data[arg_start:pos])
                if category == _GET:
                    push(memo[index])
                else:
                    memo[index] = stack[-1]
                    if index > top_index:
                        cost += 16 * (index - top_index)
                        top_index = index
            elif category == _TUPLE:
                depth = 1 + max(stack[-operand:])
                del stack[-operand:]
                push(depth)
                if depth > max_depth:
                    budget.check_depth(depth, "a tuple in the pickle")
            elif category == _MARK:
                marks.append(len(stack))
            elif category == _DROP:
                del stack[len(stack) - operand :]
            elif category == _CALL:
                depth = max(stack[-operand:])
                del stack[-operand:]
                push(depth)
            elif category == _PERSID:
                stack[-1] = 0
            elif category == _MEMOIZE:
                index = len(memo)
                memo[index] = stack[-1]
                if index > top_index:
                    cost += 16 * (index - top_index)
                    top_index = index
            elif category == _STOP:
                stack.pop()
                break
            elif category == _DUP:
                push(stack[-1])
            elif category != _NOTHING:
                mark = marks.pop()
                items_depth = max(stack[mark:], default=0)
                del stack[mark:]
                if category == _MARK_TUPLE:
                    push(1 + items_depth)
                    if items_depth >= max_depth:
                        budget.check_depth(1 + items_depth, "a tuple in the pickle")
                elif category == _MARK_NEW:
                    push(0)
                elif category == _MARK_OBJ:
                    push(items_depth)
            if cost > limit:
                budget.charge_memory(cost, "unpickling the header")
            if pos > next_check:
                budget.check_time()
                next_check = pos + _TIME_CHECK_BYTES
    except (IndexError, KeyError) as exc:
        if pos + _LONGEST_FIXED_ARGUMENT >= end:
            raise PickleTruncatedError("the pickle ends without its STOP opcode") from exc
        raise pickle.UnpicklingError("the pickle's opcodes do not fit its stack or memo") from exc
    if pos > end:
        raise PickleTruncatedError("the pickle ends inside an opcode's argument")
    budget.charge_memory(cost, "unpickling the header")
    return pos


def _text_index(text: bytes) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise pickle.UnpicklingError("a memo index of the pickle is not a number") from exc


def _variable_argument(data: bytes, kind: int, pos: int, end: int) -> tuple[int, int]:
    """Where a text-line or length-prefixed argument ends, and its length."""
    if kind in (_LINE, _TWO_LINES):
        start = pos
        for _ in range(2 if kind == _TWO_LINES else 1):
            newline = data.find(b"\n", pos, end)
            if newline < 0:
                raise PickleTruncatedError("a text argument of the pickle has no end of line")
            pos = newline + 1
        return pos, pos - start
    size_bytes = _LENGTH_BYTES[kind]
    length = int.from_bytes(data[pos : pos + size_bytes], "little", signed=kind == _LEN4)
    if length < 0:
        raise pickle.UnpicklingError("a string or bytes argument has a negative length")
    if pos + size_bytes + length > end:
        raise PickleTruncatedError("a string or bytes argument reaches past the end of the pickle")
    return pos + size_bytes + length, length

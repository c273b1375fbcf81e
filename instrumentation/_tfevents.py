"""The scalars in a TensorBoard event file, read without TensorBoard or protobuf.

An event file is a sequence of TFRecords (a little-endian uint64 length, its masked CRC32, the
data, the data's masked CRC32), each an `Event` protobuf. Only the fields a scalar needs are
decoded (tensorflow/core/util/event.proto, summary.proto, tensor.proto):

    Event:   2 step (int64), 5 summary (Summary)
    Summary: 1 value (repeated Value)
    Value:   1 tag (string), 2 simple_value (float), 9 metadata (SummaryMetadata),
             8 tensor (TensorProto)
    SummaryMetadata: 1 plugin_data (PluginData: 1 plugin_name)
    TensorProto: 1 dtype, 2 tensor_shape (TensorShapeProto: 2 dim), 4 tensor_content,
                 5 float_val, 6 double_val, 7 int_val, 10 int64_val

A scalar is a `simple_value` (torch's SummaryWriter by default, TensorBoard's v1 summaries) or a
rank-0 float, double or integer tensor of the `scalars` plugin (torch's `new_style`, TF2). The
CRCs are not checked; a record cut short (the writer still appending) ends the file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64 = 1, 2, 3, 9
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_UNPACK_FLOAT = struct.Struct("<f").unpack_from
_UNPACK_DOUBLE = struct.Struct("<d").unpack_from
_UNPACK_LENGTH = struct.Struct("<Q").unpack_from


def scalars(data: bytes) -> Iterator[tuple[str, float, int]]:
    """(tag, value, step) of each scalar in an event file's content, in file order."""
    position, end = 0, len(data)
    while position + 12 <= end:
        (length,) = _UNPACK_LENGTH(data, position)
        start = position + 12
        if start + length + 4 > end:
            return
        yield from _event_scalars(data[start : start + length])
        position = start + length + 4


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a message: an int for varints and fixed-size
    fields (the raw bits), bytes for length-delimited ones."""
    position, end = 0, len(data)
    while position < end:
        tag, position = _varint(data, position)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire == _BYTES:
            length, position = _varint(data, position)
            yield number, wire, data[position : position + length]
            position += length
        elif wire == _FIXED64:
            yield number, wire, int.from_bytes(data[position : position + 8], "little")
            position += 8
        elif wire == _FIXED32:
            yield number, wire, int.from_bytes(data[position : position + 4], "little")
            position += 4
        else:
            return  # groups (deprecated, never in an Event): stop reading this message


def _event_scalars(event: bytes) -> Iterator[tuple[str, float, int]]:
    step = 0
    summaries = []
    for number, _wire, value in _fields(event):
        if number == 2 and isinstance(value, int):
            step = value - (1 << 64) if value >= 1 << 63 else value  # int64
        elif number == 5 and isinstance(value, bytes):
            summaries.append(value)
    for summary in summaries:
        for number, _wire, value in _fields(summary):
            if number == 1 and isinstance(value, bytes):
                scalar = _value_scalar(value)
                if scalar is not None:
                    yield scalar[0], scalar[1], step


def _value_scalar(value: bytes) -> tuple[str, float] | None:
    tag = ""
    simple: float | None = None
    plugin = ""
    tensor: bytes | None = None
    for number, wire, field in _fields(value):
        if number == 1 and isinstance(field, bytes):
            tag = field.decode("utf-8", "replace")
        elif number == 2 and wire == _FIXED32 and isinstance(field, int):
            (simple,) = _UNPACK_FLOAT(field.to_bytes(4, "little"))
        elif number == 9 and isinstance(field, bytes):
            plugin = _plugin_name(field)
        elif number == 8 and isinstance(field, bytes):
            tensor = field
    if simple is not None:
        return tag, simple
    if tensor is not None and plugin in ("scalars", ""):
        number = _tensor_scalar(tensor)
        if number is not None:
            return tag, number
    return None


def _plugin_name(metadata: bytes) -> str:
    for number, _wire, field in _fields(metadata):
        if number == 1 and isinstance(field, bytes):
            for inner, _w, name in _fields(field):
                if inner == 1 and isinstance(name, bytes):
                    return name.decode("utf-8", "replace")
    return ""


def _tensor_scalar(tensor: bytes) -> float | None:
    """The value of a rank-0 numeric tensor; None for any other."""
    dtype = 0
    content = b""
    values: dict[int, tuple[int, int | bytes]] = {}
    for number, wire, field in _fields(tensor):
        if number == 1 and isinstance(field, int):
            dtype = field
        elif number == 2 and isinstance(field, bytes):
            if any(inner == 2 for inner, _w, _v in _fields(field)):
                return None  # it has dimensions: a histogram, an image, not a scalar
        elif number == 4 and isinstance(field, bytes):
            content = field
        elif number in (5, 6, 7, 10) and number not in values:
            values[number] = (wire, field)
    if dtype == _DT_FLOAT:
        return _first(values.get(5), content, 4, _UNPACK_FLOAT)
    if dtype == _DT_DOUBLE:
        return _first(values.get(6), content, 8, _UNPACK_DOUBLE)
    if dtype in (_DT_INT32, _DT_INT64):
        wire_field = values.get(7 if dtype == _DT_INT32 else 10)
        if wire_field is None:
            return None
        wire, field = wire_field
        if wire == _BYTES and isinstance(field, bytes) and field:
            number, _ = _varint(field, 0)  # packed
        elif isinstance(field, int):
            number = field
        else:
            return None
        return float(number - (1 << 64) if number >= 1 << 63 else number)
    return None


def _first(wire_field: tuple[int, int | bytes] | None, content: bytes, size: int,
           unpack: Callable[[bytes], tuple[float, ...]]) -> float | None:
    """A float or double tensor's value: its first `*_val` element (packed or not), else its
    `tensor_content`."""
    if wire_field is not None:
        wire, field = wire_field
        if isinstance(field, bytes) and len(field) >= size:
            return unpack(field)[0]
        if isinstance(field, int):
            return unpack(field.to_bytes(size, "little"))[0]
    if len(content) >= size:
        return unpack(content)[0]
    return None

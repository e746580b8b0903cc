"""TensorBoard event files without TensorFlow: TFRecord framing and the few protobuf fields needed.

A record is `length (uint64 LE) | masked CRC32C of those 8 bytes | data | masked CRC32C of data`;
each record's data is an `Event` message (tensorflow/core/util/event.proto): `wall_time` (1,
double), `step` (2, int64), `file_version` (3, string) or `summary` (5, `Summary`: repeated
`value` (1) of `tag` (1, string) and `simple_value` (2, float)).  The first event of a file
carries `file_version = "brain.Event:2"`, as TensorFlow's writer does.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import Iterable, Optional, Tuple

__all__ = ["crc32c", "masked_crc32c", "record", "scalar_event", "EventFileWriter"]


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord: framed, both checksums included."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


# -- protobuf: just the encodings the Event message needs --------------------------------------

def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF                 # int64 negatives as two's complement, as protobuf
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _bytes_field(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    return _key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(step) + body


def scalar_event(wall_time: float, step: int, values: Iterable[Tuple[str, float]]) -> bytes:
    """An Event holding one Summary with a `simple_value` per (tag, value)."""
    summary = b"".join(_bytes_field(1, _bytes_field(1, tag.encode("utf-8")) + _key(2, 5) +
                                    struct.pack("<f", float(value))) for tag, value in values)
    return _event(wall_time, step, _bytes_field(5, summary))


def text_tensor_event(wall_time: float, step: int, tag: str, text: str, plugin_name: str,
                      content: bytes) -> bytes:
    """An Event holding a scalar string tensor (DT_STRING) with a plugin's metadata, as
    `tf.summary.write` does: Summary.Value's `metadata` (9) and `tensor` (8)."""
    metadata = _bytes_field(1, _bytes_field(1, plugin_name.encode("utf-8")) + _bytes_field(2, content))
    tensor = _key(1, 0) + _varint(7) + _bytes_field(2, b"") + _bytes_field(8, text.encode("utf-8"))
    value = _bytes_field(1, tag.encode("utf-8")) + _bytes_field(9, metadata) + _bytes_field(8, tensor)
    return _event(wall_time, step, _bytes_field(5, _bytes_field(1, value)))


def version_event(wall_time: float) -> bytes:
    return _event(wall_time, 0, _bytes_field(3, b"brain.Event:2"))


class EventFileWriter:
    """Writes events to a new `directory/events.out.tfevents.<time>.<host>.<pid>.<n>.v2`.

    The file is created exclusively (`n` is the first number no other writer has taken, in
    this process or another), never shared.  Each record goes out in one `write` and
    `flush()` pushes it to the OS, so a reader (or a crash) sees whole records, at most a cut
    last one, which readers skip.
    """

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        now = time.time()
        stem = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
        number = 0
        while True:
            self.path = os.path.join(directory, f"{stem}.{number}.v2")
            try:
                self._file: Optional[object] = open(self.path, "xb")
                break
            except FileExistsError:
                number += 1
        self._lock = threading.Lock()
        self._write(version_event(now))
        self.flush()

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._file is None:
                raise ValueError(f"EventFileWriter: '{self.path}' is closed")
            self._file.write(record(data))

    def scalars(self, step: int, values: Iterable[Tuple[str, float]]) -> None:
        """One event per (tag, value) at `step`, as `tf.summary.scalar` writes; not yet flushed."""
        for tag, value in values:
            self._write(scalar_event(time.time(), int(step), [(tag, value)]))

    def text(self, step: int, tag: str, text: str, plugin_name: str, content: bytes) -> None:
        """One string tensor for a TensorBoard plugin (e.g. the Keras model's JSON for the graph tab)."""
        self._write(text_tensor_event(time.time(), int(step), tag, text, plugin_name, content))

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

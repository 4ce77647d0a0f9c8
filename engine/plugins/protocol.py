"""The plugin worker protocol: length-prefixed JSON frames over a pair of pipes.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON (one object). The
kernel writes requests on one pipe and reads answers on another; the worker's stdout and stderr are
separate pipes the kernel only captures, so whatever a plugin prints is never read as protocol.

Messages (all plain JSON; nothing is pickled)::

    worker -> kernel  {"hello": 1, "pid": N, "ok": true, "functions": [...]}       once, after import
                      {"hello": 1, "pid": N, "ok": false, "error": "...", "traceback": "..."}
    kernel -> worker  {"call": ID, "plugin": ..., "operation": ..., "context": {...}, "data": {...},
                       "traceparent": "00-...-...-01" | null}
    worker -> kernel  {"reply": ID, "ok": true, "output": {...}, "logs": [...], "spans": [...]}
                      {"reply": ID, "ok": false, "error": {"message", "code", "retryable", "type",
                       "traceback"}, "logs": [...], "spans": [...]}
    kernel -> worker  {"stop": 1}                                                   (or EOF)

This module is stdlib only: a worker imports it before anything else.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024  # a frame larger than this is garbage, not data


class ProtocolError(Exception):
    """The other side sent something that is not a frame of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame; ``ValueError``/``TypeError`` when ``message`` is not plain JSON."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if len(body) > MAX_FRAME:
        raise ValueError(f"message of {len(body)} bytes exceeds the protocol's {MAX_FRAME} bytes")
    return HEADER.pack(len(body)) + body


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


class FrameReader:
    """Turns bytes as they arrive into whole messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        messages: list[dict[str, Any]] = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise ProtocolError(f"frame header announces {size} bytes")
            if len(self._buffer) < HEADER.size + size:
                break
            body = bytes(self._buffer[HEADER.size:HEADER.size + size])
            del self._buffer[:HEADER.size + size]
            try:  # NaN and Infinity are not JSON (the sender's encoder refuses them too): a frame is plain JSON
                message = json.loads(body, parse_constant=_not_json)
            except (UnicodeDecodeError, ValueError, RecursionError) as e:
                raise ProtocolError(f"frame is not JSON: {e}") from None
            if not isinstance(message, dict):
                raise ProtocolError(f"frame holds {type(message).__name__}, not an object")
            messages.append(message)
        return messages

    @property
    def pending(self) -> int:
        return len(self._buffer)


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of every byte (the worker's side)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_message(fd: int, reader: FrameReader) -> dict[str, Any] | None:
    """Blocking read of the next message (the worker's side); None at end of file."""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        messages = reader.feed(chunk)
        if messages:
            if len(messages) > 1:
                raise ProtocolError("the kernel sent a second request before the answer to the first")
            return messages[0]

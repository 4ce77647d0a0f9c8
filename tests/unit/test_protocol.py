"""The worker protocol's frames: what the kernel takes from a worker is plain JSON, or a protocol error."""

import math

import pytest

from engine.plugins.protocol import HEADER, FrameReader, ProtocolError, encode


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def test_frames_arrive_whole_in_any_pieces():
    data = encode({"reply": 1, "ok": True, "output": {"n": 1.5, "s": "\u00fc"}}) + encode({"reply": 2})
    reader = FrameReader()
    got = [m for i in range(len(data)) for m in reader.feed(data[i:i + 1])]
    assert got == [{"reply": 1, "ok": True, "output": {"n": 1.5, "s": "\u00fc"}}, {"reply": 2}]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_frame_holding_a_non_json_number_is_a_protocol_error(constant):
    """The kernel passes a worker's output on without copying it through JSON again: a frame must not
    bring a value JSON cannot hold (Python's own json reader takes these)."""
    with pytest.raises(ProtocolError, match=constant):
        FrameReader().feed(frame(b'{"reply":1,"ok":true,"output":{"x":' + constant.encode() + b"}}"))


def test_encode_refuses_what_json_cannot_hold():
    with pytest.raises(ValueError):
        encode({"x": math.nan})

"""The camera worker's pipe (drivers/camera/wire.py): whatever bytes come out of the worker, the agent either reads
the messages that were sent or refuses with WireError naming what is wrong — never another exception."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.camera import wire

messages = st.one_of(
    st.just(wire.Ready()),
    st.builds(wire.Health, st.sampled_from(wire.HEALTH_STATES), st.one_of(st.none(), st.text(min_size=1))),
    st.builds(wire.Face, st.binary(max_size=300).map(lambda b: b"\xff\xd8" + b)),
    st.builds(wire.End, st.sampled_from(wire.END_REASONS)),
)


def _normal(m: wire.Message) -> wire.Message:
    # a detail is text after the state's newline; encoding replaces lone surrogates
    if isinstance(m, wire.Health) and m.detail is not None:
        return wire.Health(m.state, m.detail.encode("utf-8", "replace").decode("utf-8"))
    return m


@settings(max_examples=300)
@given(st.lists(messages, max_size=8), st.lists(st.integers(1, 64), max_size=20))
def test_what_the_worker_sends_is_read_back_whatever_the_chunks(sent, cuts):
    stream = b"".join(wire.encode(m) for m in sent)
    got, buffer, at = [], b"", 0
    for size in cuts + [len(stream)]:
        chunk, at = stream[at:at + size], at + size
        read, buffer = wire.split(buffer + chunk)
        got += read
    assert buffer == b""
    assert got == [_normal(m) for m in sent]


def stream_oracle(data: bytes, cuts: list[int]) -> bool:
    """True: `data` read as messages; False: refused with WireError naming the worker. Either way the same,
    however the pipe cut it into chunks (also tools/fuzz_long.py camera_wire)."""
    try:
        read, rest = wire.split(data)
    except wire.WireError as exc:
        assert "camera worker" in str(exc)
        whole = None
    else:
        # the rest is an unfinished message, and the messages read are those of the bytes before it alone
        assert data.endswith(rest)
        assert wire.split(data[:len(data) - len(rest)]) == (read, b"")
        assert len(rest) < wire.HEADER.size or wire.HEADER.unpack_from(rest)[1] > len(rest) - wire.HEADER.size
        whole = read
    got, buffer, at = [], b"", 0
    try:
        for size in cuts + [len(data)]:
            chunk, at = data[at:at + size], at + size
            messages, buffer = wire.split(buffer + chunk)
            got += messages
    except wire.WireError:
        assert whole is None, "refused in chunks what was read whole"
        return False
    assert whole is not None and got == whole, "chunks read otherwise than the whole"
    return True


def seed_stream(messages: list[wire.Message]) -> bytes:
    return b"".join(wire.encode(m) for m in messages)


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=200), st.lists(messages, max_size=5).map(seed_stream)),
       st.lists(st.integers(1, 40), max_size=10), st.data())
def test_any_bytes_are_read_or_refused_by_name(data, cuts, draw):
    if data and draw.draw(st.booleans()):                 # a flipped byte in an otherwise good stream
        at = draw.draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw.draw(st.integers(1, 255))]) + data[at + 1:]
    stream_oracle(data, cuts)


@pytest.mark.parametrize("data, says", [
    (b"X\x00\x00\x00\x00", "unknown kind"),
    (b"F\x00\x00\x00\x03abc", "not a JPEG"),
    (b"E\x00\x00\x00\x03bad", "unknown reason"),
    (b"H\x00\x00\x00\x05happy", "health state"),
    (b"H\x00\x00\x00\x02\xff\xfe", "not UTF-8"),
    (b"R\x00\x00\x00\x01x", "expected none"),
    (b"F\xff\xff\xff\xff", "over the"),
])
def test_each_bad_message_is_named(data, says):
    with pytest.raises(wire.WireError, match=says):
        wire.split(data)

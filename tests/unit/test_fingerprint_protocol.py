"""Packet framing, checksums, resynchronisation and confirmation codes of the fingerprint protocol."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.fingerprint.protocol import (
    CONFIRMATIONS, BadSlot, CorruptPacket, Decoder, Instruction, ModuleError, NoFinger, NotFound, Packet,
    PacketType, SystemParameters, WrongPassword, ack, checksum, command, data_packets, describe, encode, error_for,
)

packets = st.builds(
    Packet,
    st.sampled_from(list(PacketType)),
    st.binary(max_size=256),
    st.integers(0, 0xFFFFFFFF),
)


def drain(decoder: Decoder) -> tuple[list[Packet], int]:
    """All packets the decoder can give now, and how many damaged packets it reported."""
    found, corrupt = [], 0
    while True:
        try:
            packet = decoder.next_packet()
        except CorruptPacket:
            corrupt += 1
            continue
        if packet is None:
            return found, corrupt
        found.append(packet)


def test_verify_password_command_matches_the_datasheet_bytes():
    assert command(Instruction.VFY_PWD, b"\x00\x00\x00\x00") == bytes.fromhex("EF01 FFFFFFFF 01 0007 13 00000000 001B")


def test_checksum_is_low_16_bits_of_type_length_and_payload():
    payload = b"\xff" * 256
    assert checksum(PacketType.DATA, payload) == (2 + 1 + 2 + 255 * 256) & 0xFFFF


@given(packets)
def test_encode_then_decode_round_trips(packet):
    decoder = Decoder()
    decoder.feed(encode(packet))
    assert drain(decoder) == ([packet], 0)


@given(st.lists(packets, min_size=1, max_size=5), st.data())
def test_packets_survive_arbitrary_chunking(sent, data):
    stream = b"".join(encode(p) for p in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder, received = Decoder(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        decoder.feed(stream[start:end])
        received += drain(decoder)[0]
    assert received == sent


@given(st.binary(max_size=64).filter(lambda b: b"\xef" not in b), packets)
def test_garbage_before_a_packet_is_skipped(garbage, packet):
    decoder = Decoder()
    decoder.feed(garbage + encode(packet))
    assert drain(decoder) == ([packet], 0)
    assert decoder.skipped == len(garbage)


def test_bad_checksum_is_reported_and_the_next_packet_still_decodes():
    damaged = bytearray(ack(0x00, b"\x00\x05"))
    damaged[-1] ^= 0xFF
    good = ack(0x09)
    decoder = Decoder()
    decoder.feed(bytes(damaged) + good)
    with pytest.raises(CorruptPacket, match="checksum"):
        decoder.next_packet()
    assert drain(decoder) == ([Packet(PacketType.ACK, b"\x09")], 0)


def test_a_header_inside_a_truncated_packet_is_found_again():
    # a reply cut short by line noise, followed by a complete reply: resync on the second EF01
    truncated = ack(0x00, b"\x01\x02\x03")[:10]
    decoder = Decoder()
    decoder.feed(truncated + ack(0x02))
    packets_, corrupt = drain(decoder)
    assert Packet(PacketType.ACK, b"\x02") in packets_
    assert corrupt >= 1


def test_impossible_length_is_corrupt_not_a_wait_for_64k_bytes():
    decoder = Decoder()
    decoder.feed(b"\xef\x01\xff\xff\xff\xff\x07\xff\xff" + ack(0x00))
    assert drain(decoder) == ([Packet(PacketType.ACK, b"\x00")], 1)


@given(st.binary(max_size=400))
def test_any_byte_stream_raises_nothing_but_corrupt_packet(stream):
    decoder = Decoder()
    decoder.feed(stream)
    drain(decoder)  # CorruptPacket is caught inside; anything else fails the test
    assert decoder.pending <= len(stream)


def test_data_packets_split_by_packet_size_and_end_with_an_end_packet():
    template = bytes(range(256)) * 2
    wire = data_packets(template, 128)
    decoder = Decoder()
    decoder.feed(b"".join(wire))
    received, _ = drain(decoder)
    assert [p.type for p in received] == [PacketType.DATA] * 3 + [PacketType.END]
    assert b"".join(p.payload for p in received) == template


def test_system_parameters_round_trip_and_report_packet_size_in_bytes():
    params = SystemParameters(capacity=1000, packet_size=256, address=0x12345678)
    raw = params.encode()
    assert len(raw) == 16
    assert raw[12:14] == b"\x00\x03"  # packet size travels as an index: 3 = 256 bytes
    assert SystemParameters.decode(raw) == params


@pytest.mark.parametrize("code", sorted(CONFIRMATIONS))
def test_every_known_confirmation_code_has_a_clear_message(code):
    error = error_for(code, "Search")
    assert isinstance(error, ModuleError)
    assert error.code == code
    assert str(error).startswith("Search: ")
    assert f"0x{code:02X}" in str(error)
    assert "unknown" not in describe(code)


def test_unknown_confirmation_code_names_the_code():
    assert "unknown confirmation code 0xEE" in str(error_for(0xEE))


@pytest.mark.parametrize("code, kind, words", [
    (0x02, NoFinger, "no finger"),
    (0x09, NotFound, "no matching fingerprint"),
    (0x0B, BadSlot, "outside the module library"),
    (0x13, WrongPassword, "password"),
])
def test_common_confirmations_map_to_their_error(code, kind, words):
    error = error_for(code)
    assert type(error) is kind
    assert words in str(error)

"""Packet framing, checksums, resynchronisation and confirmation codes of the fingerprint protocol.

`line_oracle` is the fuzz oracle for the frame decoder and the reply checks together (a noisy line:
packets, garbage, torn packets, power-up bytes, cut anywhere); tools/fuzz_long.py runs it over
>= 1,000,000 inputs."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.fingerprint.protocol import (
    CONFIRMATIONS, MAX_LENGTH, PACKET_SIZES, POWER_UP_BYTE, REPLIES, BadSlot, CorruptPacket, Decoder, Instruction,
    MismatchedReply, ModuleError, NoFinger, NotFound, Packet, PacketType, SystemParameters, UnexpectedPacket,
    WrongPassword, ack, check_reply, checksum, command, data_packets, describe, encode, error_for, search_result,
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


# --- a reply must fit its command (issue 11) ---------------------------------------------------------

from drivers.fingerprint.library import LibraryRecord, SyncPlan, template_hash  # noqa: E402
from drivers.fingerprint.protocol import (  # noqa: E402
    REPLIES, MismatchedReply, check_reply, search_result, work_seconds,
)


def test_img2tz_bare_ok_is_never_taken_for_a_search_reply():
    """Issue 11 finding 1: Img2Tz's `00` read as Search's reply was decoded as slot 0 score 0."""
    with pytest.raises(MismatchedReply, match="SEARCH: an OK reply carries 4 data bytes, this one 0"):
        check_reply(Instruction.SEARCH, 0, b"")


@pytest.mark.parametrize("other", [i for i in REPLIES if i != Instruction.SEARCH])
def test_no_other_commands_ok_reply_passes_as_a_search_hit(other):
    with pytest.raises(MismatchedReply):
        check_reply(Instruction.SEARCH, 0, bytes(REPLIES[other].data))


def test_a_search_reply_with_score_zero_is_no_match_and_a_slot_outside_the_library_is_refused():
    assert search_result(0, b"\x00\x00\x00\x00", 300) is None
    assert search_result(0x09, b"\x00\x05\x00\x40", 300) is None
    hit = search_result(0, b"\x00\x05\x00\x40", 300)
    assert (hit.slot, hit.score) == (5, 64)
    with pytest.raises(MismatchedReply, match="slot 300, outside the library 0..299"):
        search_result(0, b"\x01\x2c\x00\x40", 300)


def test_a_confirmation_code_a_command_cannot_give_is_a_mismatch():
    check_reply(Instruction.GEN_IMG, 0x02, b"")          # no finger: fine
    with pytest.raises(MismatchedReply, match="GEN_IMG cannot answer confirmation 0x09"):
        check_reply(Instruction.GEN_IMG, 0x09, b"\x00\x00\x00\x00")   # a late Search miss


def test_search_timeout_grows_with_the_library():
    assert work_seconds(Instruction.SEARCH, 1000) > work_seconds(Instruction.SEARCH, 100) >= 0.2
    assert work_seconds(Instruction.SEARCH, 1000) >= 2.0      # twice the datasheet's 1 s mean at 1000


@given(st.sampled_from(list(REPLIES)), st.integers(0, 255), st.binary(max_size=64), st.integers(1, 2000))
def test_any_reply_is_accepted_or_refused_with_mismatched_reply_and_a_hit_needs_a_real_score(instr, code, data,
                                                                                              capacity):
    try:
        check_reply(instr, code, data)
    except MismatchedReply:
        return
    if instr == Instruction.SEARCH:
        try:
            hit = search_result(code, data, capacity)
        except MismatchedReply:
            return
        if hit is not None:
            assert code == 0 and len(data) == 4 and hit.score > 0 and hit.slot < capacity


@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["module_id", "template_size", "slots", "1", "x"]), inner, max_size=4),
).map(lambda v: json.dumps(v).encode())))
@settings(deadline=None)      # each example writes a file: no timing assertion on a busy machine
def test_a_damaged_library_record_is_read_as_nothing_known(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("rec") / "lib.json"
    path.write_bytes(raw)
    record = LibraryRecord.load(path)
    assert record.template_size in (None, 512, 768)
    assert record.module_id is None or len(record.module_id) == 16
    assert isinstance(record.slots, dict)
    assert all(isinstance(k, int) and isinstance(v, str) for k, v in record.slots.items())


def test_library_record_survives_a_round_trip_and_the_plan_loads_only_the_difference(tmp_path):
    record = LibraryRecord(tmp_path / "lib.json", LibraryRecord.new_module_id(), 512,
                           {1: template_hash(b"a" * 512), 2: template_hash(b"b" * 512)})
    record.save()
    again = LibraryRecord.load(tmp_path / "lib.json")
    assert again == record
    plan = SyncPlan(occupied={1, 2, 9})
    plan.checked(0.0)
    wanted = {1: b"a" * 512, 2: b"B" * 512, 3: b"c" * 512}
    assert plan.next_step(wanted, again) == ("delete", 9, None)          # nobody's template: cleared first
    plan.occupied.discard(9)
    assert plan.next_step(wanted, again) == ("load", 2, b"B" * 512)      # changed
    again.slots[2] = template_hash(b"B" * 512)
    assert plan.next_step(wanted, again) == ("load", 3, b"c" * 512)      # new
    again.slots[3] = template_hash(b"c" * 512)
    assert plan.next_step(wanted, again) is None


# --- a noisy line, end to end: decoder, then what the driver makes of each acknowledge ---------------
FRAME_SIZE = 9                       # EF01, address, type, length


def line_oracle(pieces: list[tuple], cuts: list[int], instruction: Instruction, capacity: int) -> tuple[int, int]:
    """`pieces`: ("packet", Packet) | ("garbage", bytes) | ("torn", Packet, keep) | ("power_up",), sent
    back to back and read in chunks cut at `cuts`. Whatever the line carries, the decoder gives only
    packets that were on it, holds a bounded number of bytes, and raises nothing but CorruptPacket;
    a reply is then taken for `instruction` or refused as another command's (MismatchedReply).
    Returns (packets decoded, damaged packets reported)."""
    stream, sent, noise, clean = b"", [], b"", True
    for piece in pieces:
        if piece[0] == "packet":
            stream += encode(piece[1])
            sent.append(piece[1])
        elif piece[0] == "garbage":
            stream += piece[1]
            noise += piece[1]
            clean = clean and b"\xef" not in piece[1]
        elif piece[0] == "torn":
            stream += encode(piece[1])[:piece[2]]
            clean = False
        else:
            stream += bytes([POWER_UP_BYTE])
            noise += bytes([POWER_UP_BYTE])
    decoder, received, corrupt = Decoder(), [], 0
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(stream)]):
        decoder.feed(stream[start:end])
        found, damaged = drain(decoder)
        received += found
        corrupt += damaged
        assert decoder.pending < FRAME_SIZE + MAX_LENGTH      # a noisy line cannot fill the memory
    for packet in received:
        assert encode(packet) in stream                       # nothing invented
    if clean:        # noise without 0xEF cannot look like a header: every packet, in order, noise skipped
        assert received == sent
        assert decoder.skipped == len(noise)
        assert decoder.power_up_seen == (POWER_UP_BYTE in noise)   # the module restarted: noticed
    for packet in received:
        if packet.type == PacketType.ACK and packet.payload:
            reply_oracle(instruction, packet.payload[0], packet.payload[1:], capacity)
    return len(received), corrupt


def reply_oracle(instruction: Instruction, code: int, data: bytes, capacity: int) -> None:
    try:
        check_reply(instruction, code, data)
        if instruction == Instruction.SEARCH:
            hit = search_result(code, data, capacity)
            if hit is not None:        # only a real hit verifies anybody
                assert code == 0 and len(data) == 4 and hit.score > 0 and 0 <= hit.slot < capacity
        elif instruction == Instruction.READ_SYS_PARA and code == 0:
            assert SystemParameters.decode(data).packet_size in PACKET_SIZES
    except (MismatchedReply, UnexpectedPacket) as e:
        assert str(e)


line_pieces = st.lists(st.one_of(
    st.tuples(st.just("packet"), packets),
    st.tuples(st.just("packet"), st.builds(lambda c, d: Packet(PacketType.ACK, bytes([c]) + d),
                                           st.integers(0, 0x21), st.binary(max_size=34))),
    st.tuples(st.just("garbage"), st.binary(max_size=40)),
    st.tuples(st.just("garbage"), st.binary(max_size=40).map(lambda b: b.replace(b"\xef", b"\x55"))),
    st.tuples(st.just("torn"), packets, st.integers(0, 40)),
    st.tuples(st.just("power_up"))), max_size=8)


@settings(max_examples=400, deadline=None)
@given(line_pieces, st.lists(st.integers(0, 3000), max_size=12), st.sampled_from(list(REPLIES)),
       st.integers(0, 2000))
def test_a_noisy_line_gives_only_packets_that_were_on_it_and_replies_are_taken_or_refused(pieces, cuts, instr,
                                                                                          capacity):
    line_oracle(pieces, cuts, instr, capacity)


@given(st.binary(min_size=1, max_size=64).filter(lambda b: b"\xef" not in b))
def test_a_power_up_byte_in_the_noise_is_noticed(noise):
    decoder = Decoder()
    decoder.feed(noise + ack(0x00))
    assert drain(decoder) == ([Packet(PacketType.ACK, b"\x00")], 0)
    assert decoder.power_up_seen == (POWER_UP_BYTE in noise)

"""Keyed means SUN or refuse: over any answers a card could give, no path accepts a keyed UID without
a genuine, fresh SUN message (issue 18). The card under test answers each APDU as a genuine tag would,
as a clone replaying a genuine tag's old NDEF file, or with any bytes and status word at all; the
reader runs the same `read_tag` + `classify` the PC/SC driver runs, with allow_uid_only on.
"""
from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from drivers.cards.pcsc import REFUSAL_REASONS, CardRefused, PcscCardReader, read_tag
from drivers.cards.sun_url import SunLayout
from drivers.cards.virtual_card import VirtualCard
from drivers.events import CardRead

BOX = "04DE5F1EACC040"
KEYS = (bytes(range(16)), bytes(range(16, 32)))
LAYOUTS = {
    "default": ("box.example/t?picc_data={picc}&cmac={mac}", SunLayout()),
    "nxp": ("ntag.nxp.com/424?e={picc}&c={mac}", SunLayout(picc_param="e", mac_param="c")),
    "path": ("box.example/t/{picc}/{mac}", SunLayout(url_style="path")),
    "mac_input": ("box.example/t?picc_data={mac_input}{picc}&cmac={mac}", None),
    "random_uid": ("box.example/t?picc_data={picc}&cmac={mac}", SunLayout(random_uid=True)),
}
SWS = [0x9000, 0x6A82, 0x6985, 0x6986, 0x6B00, 0x6700, 0x6D00, 0x6E00, 0x9100, 0x6282]

answer = st.one_of(
    st.just(("genuine",)),
    st.just(("clone",)),
    st.tuples(st.just("sw"), st.sampled_from(SWS)),
    st.tuples(st.just("data"), st.binary(max_size=64), st.sampled_from(SWS) | st.integers(0, 0xFFFF)),
    st.tuples(st.just("uid"), st.sampled_from([BOX, "04A1B2C3D4E5F6", "08A1B2C3"])),
)
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def setup(layout_name: str):
    url, layout = LAYOUTS[layout_name]
    genuine = VirtualCard(BOX, sun_keys=KEYS, url=url, counter=10, random_uid=layout_name == "random_uid")
    layout = layout or SunLayout(mac_input_offset=genuine.template.mac_input_offset)
    counters: dict[str, int] = {}
    reader = PcscCardReader(sun_keys={BOX: KEYS}.get, counters=counters, allow_uid_only=True, layout=layout,
                            meta_read_keys=lambda: [bytes(16), KEYS[0]])
    # A skimmer read the genuine tag once (accepted); the clone serves that file ever after.
    first = reader.classify(read_tag(transmit_of(genuine)))
    assert first.sun_verified and first.sun_counter == 11
    clone = VirtualCard(BOX, ndef_file=genuine.last_ndef_file, url=url)
    return genuine, clone, reader, counters


def transmit_of(card: VirtualCard):
    def transmit(apdu: bytes) -> tuple[bytes, int]:
        response = card.answer(apdu)
        return response[:-2], int.from_bytes(response[-2:], "big")
    return transmit


def mixed_transmit(genuine: VirtualCard, clone: VirtualCard, script: list[tuple]):
    served = iter(script)
    real, copy = transmit_of(genuine), transmit_of(clone)

    def transmit(apdu: bytes) -> tuple[bytes, int]:
        choice = next(served, ("clone",))
        ours, theirs = real(apdu), copy(apdu)         # both cards see every APDU, like two in the field
        if choice[0] == "genuine":
            return ours
        if choice[0] == "clone":
            return theirs
        if choice[0] == "sw":
            return b"", choice[1]
        if choice[0] == "uid":
            return bytes.fromhex(choice[1]), 0x9000
        return choice[1], choice[2]
    return transmit


@FUZZ
@given(st.sampled_from(sorted(LAYOUTS)), st.lists(st.lists(answer, max_size=24), min_size=1, max_size=4))
def test_no_answer_sequence_gets_a_keyed_uid_accepted_without_a_fresh_genuine_sun(layout_name, presentations):
    for read in presentations_oracle(layout_name, presentations):
        event(f"{type(read).__name__} {getattr(read, 'reason', '')}")


def presentations_oracle(layout_name: str, presentations: list[list[tuple]]) -> list[CardRead]:
    """Presentations of mixed genuine / clone / arbitrary answers to one reader (tools/fuzz_long.py runs
    this over >= 1,000,000 inputs); returns what the reader made of each."""
    genuine, clone, reader, counters = setup(layout_name)
    reads = []
    for script in presentations:
        before = counters.get(BOX)
        mirrored = genuine.counter                  # counters the genuine tag had served before this read
        raw = read_tag(mixed_transmit(genuine, clone, script))
        if raw is None:
            continue
        read = reader.classify(raw)
        reads.append(read)
        if isinstance(read, CardRefused):
            assert read.reason in REFUSAL_REASONS and read.detail
            assert not read.sun_verified and read.sun_counter is None
            continue
        assert type(read) is CardRead
        if read.uid == BOX or (reader.sun_keys(raw.uid) is not None):
            # the only way in: a SUN message the genuine tag mirrored during this read, fresher than any before
            assert read.sun_verified and not read.uid_only
            assert read.sun_counter > before and mirrored < read.sun_counter <= genuine.counter
            assert counters[BOX] == read.sun_counter
        else:
            assert read.uid_only and not read.sun_verified and reader.sun_keys(read.uid) is None
    return reads


@FUZZ
@given(st.sampled_from(sorted(LAYOUTS)), st.lists(st.sampled_from(["clone", "sw", "uid"]), max_size=24))
def test_a_clone_alone_is_always_refused_and_never_moves_the_counter(layout_name, kinds):
    genuine, clone, reader, counters = setup(layout_name)
    script = [("sw", 0x6A82) if k == "sw" else ("uid", BOX) if k == "uid" else ("clone",) for k in kinds]
    raw = read_tag(mixed_transmit(genuine, clone, script))
    if raw is None:
        return
    read = reader.classify(raw)
    assert isinstance(read, CardRefused) or read.uid != BOX
    assert not read.sun_verified
    assert counters == {BOX: 11}


def test_all_genuine_answers_are_accepted_so_the_properties_are_not_vacuous():
    for name in LAYOUTS:
        genuine, clone, reader, _ = setup(name)
        read = reader.classify(read_tag(mixed_transmit(genuine, clone, [("genuine",)] * 30)))
        assert type(read) is CardRead and read.sun_verified and read.sun_counter == 12, name

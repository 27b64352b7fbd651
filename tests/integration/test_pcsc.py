"""Badges and box tags through a real pcscd, vsmartcard's vpcd reader and a virtual card."""
import asyncio

import pytest

from drivers.cards.pcsc import CardRefused, PcscCardReader
from drivers.cards.sun_url import SunLayout
from drivers.cards.virtual_card import VirtualCard, uri_ndef_file
from drivers.events import CardRead, CardReadIncomplete, DeviceHealth
from pcsc_fixtures import VPCD_PORT, VPCD_READER, Events, cards, pcscd, wait_reader_empty  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pcsc

BADGE = "04A1B2C3D4E5F6"
BOX = "04DE5F1EACC040"
PLAIN_BOX = "04C0FFEE000001"          # a box whose tag was never given SUN keys
BOX_KEYS = (bytes.fromhex("00112233445566778899AABBCCDDEEFF"), bytes.fromhex("F0E1D2C3B4A5968778695A4B3C2D1E0F"))


def box_registry(uid: str):
    return BOX_KEYS if uid == BOX else None


def reads(events: Events) -> list[CardRead]:
    return events.of(CardRead)


@pytest.fixture
async def reader_factory():
    started: list[PcscCardReader] = []

    async def start(**kwargs) -> tuple[PcscCardReader, Events]:
        reader = PcscCardReader(reader_filter=VPCD_READER, **kwargs)
        events = Events()
        await reader.start(events)
        started.append(reader)
        return reader, events

    yield start
    for reader in started:
        await reader.stop()


async def test_badge_uid_is_read(pcscd, cards, reader_factory):
    reader, events = await reader_factory()
    await events.wait_for(lambda e: isinstance(e, DeviceHealth) and e.state == "connected")
    assert reader.health().detail["readers"] == [VPCD_READER]

    cards(BADGE).insert()
    read = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert read == CardRead("cards", BADGE, sun_verified=False, sun_counter=None, uid_only=True)


async def test_box_tag_sun_verified_with_increasing_counter(pcscd, cards, reader_factory):
    counters: dict[str, int] = {}
    _, events = await reader_factory(sun_keys=box_registry, counters=counters)
    tag = cards(BOX, sun_keys=BOX_KEYS, counter=40)

    for expected in (41, 42):
        seen = len(events.items)
        tag.insert()
        read = await events.wait_for(lambda e: isinstance(e, CardRead), since=seen)
        assert (read.uid, read.sun_verified, read.sun_counter, read.uid_only) == (BOX, True, expected, False)
        assert not isinstance(read, CardRefused)
        tag.remove()                          # lifted, then presented again
        await asyncio.to_thread(wait_reader_empty)
    assert counters == {BOX: 42}    # the caller's store holds the last genuine counter


async def test_cloned_tag_replaying_an_old_sun_message_is_refused(pcscd, cards, reader_factory):
    counters: dict[str, int] = {}
    _, events = await reader_factory(sun_keys=box_registry, counters=counters)
    genuine = cards(BOX, sun_keys=BOX_KEYS)
    genuine.insert()
    await events.wait_for(lambda e: isinstance(e, CardRead) and e.sun_counter == 1)
    copied = genuine.last_ndef_file       # what a skimmer copies into a magic card with the same UID
    genuine.remove()

    seen = len(events.items)
    clone = cards(BOX, ndef_file=copied)
    clone.insert()
    refused = await events.wait_for(lambda e: isinstance(e, CardRead), since=seen)
    assert isinstance(refused, CardRefused)
    assert (refused.uid, refused.sun_verified, refused.uid_only, refused.reason) == (BOX, False, False, "replayed")
    assert counters == {BOX: 1}


async def test_tag_with_a_forged_mac_is_refused(pcscd, cards, reader_factory):
    _, events = await reader_factory(sun_keys=box_registry)
    forged = cards(BOX, sun_keys=(BOX_KEYS[0], bytes(16)))   # right PICCData key, wrong MAC key
    forged.insert()
    refused = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert isinstance(refused, CardRefused) and refused.reason == "bad_mac"
    assert not refused.sun_verified


@pytest.mark.parametrize("allow_uid_only", [True, False])
async def test_uid_only_tag_follows_the_site_policy(pcscd, cards, reader_factory, allow_uid_only):
    _, events = await reader_factory(sun_keys=box_registry, allow_uid_only=allow_uid_only)
    cards(PLAIN_BOX).insert()                # a box tag without SUN keys: it offers nothing but its UID
    read = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert read.uid == PLAIN_BOX and read.uid_only and not read.sun_verified
    if allow_uid_only:
        assert type(read) is CardRead
    else:
        assert isinstance(read, CardRefused) and read.reason == "uid_only_not_allowed"


async def test_sun_tag_is_accepted_where_uid_only_is_refused(pcscd, cards, reader_factory):
    _, events = await reader_factory(sun_keys=box_registry, allow_uid_only=False)
    cards(BOX, sun_keys=BOX_KEYS).insert()
    read = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert type(read) is CardRead and read.sun_verified


# pulled after the UID, after SELECT CC, mid NDEF read; before answering, or half-way through an answer
@pytest.mark.parametrize("answered, mid_answer", [(1, False), (3, False), (6, False), (3, True), (6, True)])
async def test_card_pulled_mid_read_asks_for_it_again_and_the_reader_stays_healthy(
        pcscd, cards, reader_factory, answered, mid_answer):
    reader, events = await reader_factory(sun_keys=box_registry)
    pulled = cards(BOX, sun_keys=BOX_KEYS, remove_after_apdus=answered, pull_mid_answer=mid_answer)
    pulled.insert()
    badge = cards(BADGE)
    assert await asyncio.to_thread(pulled.wait_out_of_field)
    assert len(pulled.apdus) == answered + 1
    await events.wait_for(lambda e: isinstance(e, CardReadIncomplete))   # the screen says 请重新刷卡
    await asyncio.to_thread(wait_reader_empty)
    badge.insert()                           # the next presentation is read normally
    await events.wait_for(lambda e: isinstance(e, CardRead) and e.uid == BADGE)
    assert [r.uid for r in reads(events)] == [BADGE]               # nothing counted, nothing refused
    assert [h.state for h in events.of(DeviceHealth)] == ["connected"]   # a pulled card is no fault
    assert reader.health().state == "connected" and reader.health().last_error is None


# The downgrade a counterfeiter tries with a UID-writable card (issue 18): the keyed box's UID, and any
# answer but a SUN message. allow_uid_only is on (the default): it must not matter.
DOWNGRADES = {
    "no_ndef_app": ({}, "no_ndef_app"),                                      # SELECT D2760000850101 -> 6A82
    "read_binary_6985": ({"sun_keys": BOX_KEYS, "ndef_read_sw": 0x6985}, "read_error"),
    "read_binary_6986": ({"sun_keys": BOX_KEYS, "ndef_read_sw": 0x6986}, "read_error"),
    "cc_read_access_locked": ({"sun_keys": BOX_KEYS, "cc_read_access": 0x80}, "read_error"),
    "url_without_sun": ({"ndef_file": uri_ndef_file("box.example/t?box=B-001")}, "no_sun"),
    "select_app_6985": ({"sun_keys": BOX_KEYS, "select_app_sw": 0x6985}, "no_ndef_app"),
}


@pytest.mark.parametrize("case", sorted(DOWNGRADES))
async def test_keyed_box_uid_without_a_sun_message_is_refused_naming_why(pcscd, cards, reader_factory, case):
    counters: dict[str, int] = {BOX: 7}
    _, events = await reader_factory(sun_keys=box_registry, counters=counters, allow_uid_only=True)
    kwargs, reason = DOWNGRADES[case]
    cards(BOX, **kwargs).insert()
    refused = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert isinstance(refused, CardRefused), refused
    assert (refused.uid, refused.reason, refused.sun_verified, refused.uid_only) == (BOX, reason, False, False)
    assert refused.detail
    assert counters == {BOX: 7}


# Tags personalised the ways real deployments do, each read through pcscd (the vectors: test_sun_layouts.py)
LAYOUTS = {
    "nxp_e_c": ("ntag.nxp.com/424?e={picc}&c={mac}", SunLayout(picc_param="e", mac_param="c")),
    "path": ("box.example/t/{picc}/{mac}", SunLayout(url_style="path")),
    "amp_escaped": ("box.example/t?c={mac}&amp;e={picc}", SunLayout(picc_param="e", mac_param="c")),
    "mac_input_offset": ("box.example/t?picc_data={mac_input}{picc}&cmac={mac}", None),
    "random_uid": ("box.example/t?picc_data={picc}&cmac={mac}", SunLayout(random_uid=True)),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
async def test_sun_layouts_are_read_through_pcscd(pcscd, cards, reader_factory, name):
    url, layout = LAYOUTS[name]
    tag = cards(BOX, sun_keys=BOX_KEYS, url=url, counter=99, random_uid=name == "random_uid")
    layout = layout or SunLayout(mac_input_offset=tag.template.mac_input_offset)
    counters: dict[str, int] = {}
    _, events = await reader_factory(sun_keys=box_registry, counters=counters, layout=layout,
                                     meta_read_keys=lambda: [bytes(16), BOX_KEYS[0]])
    for expected in (100, 101):
        seen = len(events.items)
        tag.insert()
        read = await events.wait_for(lambda e: isinstance(e, CardRead), since=seen)
        assert type(read) is CardRead, read
        assert (read.uid, read.sun_verified, read.sun_counter, read.uid_only) == (BOX, True, expected, False)
        tag.remove()
        await asyncio.to_thread(wait_reader_empty)
    assert counters == {BOX: 101}

    clone = cards(BOX, ndef_file=tag.last_ndef_file, random_uid=name == "random_uid")   # replays the last read
    seen = len(events.items)
    clone.insert()
    refused = await events.wait_for(lambda e: isinstance(e, CardRead), since=seen)
    assert isinstance(refused, CardRefused) and (refused.uid, refused.reason) == (BOX, "replayed")


@pytest.mark.parametrize("how", ["kill", "stop"])   # a crash, and an orderly stop (package upgrade)
async def test_pcscd_going_away_and_back_is_recovered(pcscd, cards, reader_factory, how):
    counters: dict[str, int] = {}
    reader, events = await reader_factory(sun_keys=box_registry, counters=counters)
    tag = cards(BOX, sun_keys=BOX_KEYS)
    tag.insert()                              # left on the reader throughout
    await events.wait_for(lambda e: isinstance(e, CardRead) and e.sun_counter == 1)

    seen = len(events.items)
    getattr(pcscd, how)()
    down = await events.wait_for(lambda e: isinstance(e, DeviceHealth) and e.state == "missing", since=seen)
    assert "PC/SC service unavailable" in down.last_error
    assert reader.health().state == "missing"

    seen = len(events.items)
    pcscd.start()
    await events.wait_for(lambda e: isinstance(e, DeviceHealth) and e.state == "connected", since=seen)
    read = await events.wait_for(lambda e: isinstance(e, CardRead), since=seen)
    assert read.sun_verified and read.sun_counter == 2
    health = reader.health()
    assert health.state == "connected" and health.last_error is None    # no stale error beside "connected"
    healths = events.of(DeviceHealth)
    assert [e.state for e in healths] == ["connected", "missing", "connected"]
    assert "PC/SC service unavailable" in healths[1].last_error and healths[2].last_error is None


async def test_driver_started_before_pcscd_connects_when_it_comes(pcscd, cards, reader_factory):
    pcscd.kill()
    reader, events = await reader_factory()
    await events.wait_for(lambda e: isinstance(e, DeviceHealth) and e.state == "missing")
    assert reader.health().state == "missing"

    pcscd.start()
    cards(BADGE).insert()
    read = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert read.uid == BADGE
    assert reader.health().state == "connected"


async def test_reader_filter_is_a_case_insensitive_part_of_the_name(pcscd, cards):
    reader = PcscCardReader(reader_filter="virtual pcd 00 00")
    events = Events()
    await reader.start(events)
    try:
        cards(BADGE).insert()
        assert (await events.wait_for(lambda e: isinstance(e, CardRead))).uid == BADGE
        assert reader.health().detail["readers"] == [VPCD_READER]
    finally:
        await reader.stop()


async def test_no_reader_filter_watches_every_reader(pcscd, cards):
    reader = PcscCardReader()
    events = Events()
    await reader.start(events)
    try:
        await events.wait_for(lambda e: isinstance(e, DeviceHealth) and e.state == "connected")
        assert VPCD_READER in reader.health().detail["readers"] and len(reader.health().detail["readers"]) >= 2
        second = VirtualCard(BADGE, port=VPCD_PORT + 1)      # on the second reader, 'Virtual PCD 00 01'
        second.insert()
        try:
            assert (await events.wait_for(lambda e: isinstance(e, CardRead))).uid == BADGE
        finally:
            second.remove()
    finally:
        await reader.stop()


async def test_reader_filter_that_matches_nothing_reports_missing(pcscd, reader_factory):
    reader = PcscCardReader(reader_filter="ACS ACR122U")
    events = Events()
    await reader.start(events)
    try:
        missing = await events.wait_for(lambda e: isinstance(e, DeviceHealth))
        assert missing.state == "missing" and "ACS ACR122U" in missing.last_error
    finally:
        await reader.stop()

"""Badges and box tags through a real pcscd, vsmartcard's vpcd reader and a virtual card."""
import asyncio

import pytest

from drivers.cards.pcsc import CardRefused, PcscCardReader
from drivers.events import CardRead, DeviceHealth
from pcsc_fixtures import VPCD_READER, Events, cards, pcscd, wait_reader_empty  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pcsc

BADGE = "04A1B2C3D4E5F6"
BOX = "04DE5F1EACC040"
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
    cards(BOX).insert()                      # a box tag that offers nothing but its UID
    read = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert read.uid == BOX and read.uid_only and not read.sun_verified
    if allow_uid_only:
        assert type(read) is CardRead
    else:
        assert isinstance(read, CardRefused) and read.reason == "uid_only_not_allowed"


async def test_sun_tag_is_accepted_where_uid_only_is_refused(pcscd, cards, reader_factory):
    _, events = await reader_factory(sun_keys=box_registry, allow_uid_only=False)
    cards(BOX, sun_keys=BOX_KEYS).insert()
    read = await events.wait_for(lambda e: isinstance(e, CardRead))
    assert type(read) is CardRead and read.sun_verified


async def test_card_pulled_mid_read_emits_nothing(pcscd, cards, reader_factory):
    reader, events = await reader_factory(sun_keys=box_registry)
    # UID, SELECT application, SELECT CC answered; pulled before the first READ BINARY.
    pulled = cards(BOX, sun_keys=BOX_KEYS, remove_after_apdus=3)
    pulled.insert()
    badge = cards(BADGE)
    assert await asyncio.to_thread(pulled.wait_out_of_field)
    assert len(pulled.apdus) == 4
    await asyncio.to_thread(wait_reader_empty)
    badge.insert()                           # the next presentation is read normally
    await events.wait_for(lambda e: isinstance(e, CardRead) and e.uid == BADGE)
    assert [r.uid for r in reads(events)] == [BADGE]
    assert [h.state for h in events.of(DeviceHealth)] == ["connected"]   # a pulled card is no fault


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
    assert health.state == "connected" and "PC/SC service unavailable" in health.last_error
    states = [e.state for e in events.of(DeviceHealth)]
    assert states == ["connected", "missing", "connected"]


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


async def test_reader_filter_that_matches_nothing_reports_missing(pcscd, reader_factory):
    reader = PcscCardReader(reader_filter="ACS ACR122U")
    events = Events()
    await reader.start(events)
    try:
        missing = await events.wait_for(lambda e: isinstance(e, DeviceHealth))
        assert missing.state == "missing" and "ACS ACR122U" in missing.last_error
    finally:
        await reader.stop()

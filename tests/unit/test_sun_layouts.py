"""SUN URL layouts checked against NXP AN12196's worked examples, and the keyed-tag refusals.

AN12196 (rev 1.8) examples used, all with K_SDMMetaRead = K_SDMFileRead = 00…00:
- p. 12: https://ntag.nxp.com/424?e=EF963FF7828658A599F3041510671E88&c=94EED9EE65337086
  -> UID 04DE5F1EACC040, SDMReadCtr 0x3D (61); SDMMAC over an empty input (SDMMACInputOffset == SDMMACOffset).
- p. 18: https://www.my424dna.com/?picc_data=FD91EC264309878BE6345CBE53BADF40&enc=CEE9A53E3E463EF1F459635736738962
  &cmac=ECC1E7F6C6C73BF6 -> UID 04958CAA5C5E80, SDMReadCtr 8; the SDMMAC covers "CEE9…62&cmac=", i.e.
  SDMMACInputOffset is where the encrypted file data starts.
"""
from __future__ import annotations

import pytest

from drivers.cards.ndef import NLEN_SIZE
from drivers.cards.pcsc import CardRefused, PcscCardReader, RawRead
from drivers.cards.sun import SunError
from drivers.cards.sun_url import SunLayout, find_sun
from drivers.events import CardRead
from drivers.cards.virtual_card import uri_ndef_file

ZERO = bytes(16)
P12_PICC, P12_MAC, P12_UID, P12_COUNTER = "EF963FF7828658A599F3041510671E88", "94EED9EE65337086", "04DE5F1EACC040", 61
P18_PICC, P18_ENC, P18_MAC = "FD91EC264309878BE6345CBE53BADF40", "CEE9A53E3E463EF1F459635736738962", "ECC1E7F6C6C73BF6"
P18_UID, P18_COUNTER = "04958CAA5C5E80", 8


def message(url_body: str, prefix_code: int = 0x04) -> bytes:
    return uri_ndef_file(url_body, prefix_code)[NLEN_SIZE:]


def reader(layout: SunLayout, registry: dict[str, tuple[bytes, bytes]], **kwargs) -> PcscCardReader:
    return PcscCardReader(sun_keys=registry.get, layout=layout, **kwargs)


# layout -> the AN12196 p. 12 message written the way that layout expects
P12_LAYOUTS = {
    "nxp_e_c": (SunLayout(picc_param="e", mac_param="c"), f"ntag.nxp.com/424?e={P12_PICC}&c={P12_MAC}"),
    "default_names": (SunLayout(), f"box.example/t?picc_data={P12_PICC}&cmac={P12_MAC}"),
    "reversed_order": (SunLayout(picc_param="e", mac_param="c"), f"ntag.nxp.com/424?c={P12_MAC}&e={P12_PICC}"),
    "amp_escaped": (SunLayout(picc_param="e", mac_param="c"), f"ntag.nxp.com/424?x=1&amp;e={P12_PICC}&amp;c={P12_MAC}"),
    "other_params_repeated": (SunLayout(picc_param="e", mac_param="c"), f"n.example/?x=1&x=2&e={P12_PICC}&c={P12_MAC}#a"),
    "path": (SunLayout(url_style="path"), f"box.example/t/{P12_PICC}/{P12_MAC}"),
    "path_positions": (SunLayout(url_style="path", picc_segment=1, mac_segment=3),
                       f"box.example/t/{P12_PICC}/x/{P12_MAC}/index.html?lang=zh"),
}


@pytest.mark.parametrize("name", sorted(P12_LAYOUTS))
def test_an12196_p12_message_is_verified_in_each_layout(name):
    layout, url = P12_LAYOUTS[name]
    read = reader(layout, {P12_UID: (ZERO, ZERO)}).classify(RawRead(P12_UID, message(url)))
    assert type(read) is CardRead
    assert (read.uid, read.sun_verified, read.sun_counter, read.uid_only) == (P12_UID, True, P12_COUNTER, False)


@pytest.mark.parametrize("name", sorted(P12_LAYOUTS))
def test_a_layout_that_does_not_match_the_tags_url_refuses_the_keyed_tag(name):
    layout, url = P12_LAYOUTS[name]
    other = SunLayout(picc_param="p", mac_param="m") if layout.url_style == "path" else SunLayout(url_style="path")
    read = reader(other, {P12_UID: (ZERO, ZERO)}).classify(RawRead(P12_UID, message(url)))
    assert isinstance(read, CardRefused) and read.reason == "no_sun" and not read.sun_verified


def p18_url_and_input_offset() -> tuple[bytes, int]:
    body = f"www.my424dna.com/?picc_data={P18_PICC}&enc={P18_ENC}&cmac={P18_MAC}"
    msg = message(body, prefix_code=0x04)
    # SDMMACInputOffset as the personaliser programmed it: the file offset where the ENC data starts
    return msg, NLEN_SIZE + msg.index(P18_ENC.encode())


def test_an12196_p18_mac_over_the_url_from_sdmmac_input_offset():
    msg, offset = p18_url_and_input_offset()
    fields = find_sun(msg, SunLayout(mac_input_offset=offset))
    assert fields.mac_input == f"{P18_ENC}&cmac=".encode()     # the input AN12196 p. 18 MACs
    read = reader(SunLayout(mac_input_offset=offset), {P18_UID: (ZERO, ZERO)}).classify(RawRead(P18_UID, msg))
    assert type(read) is CardRead and (read.uid, read.sun_counter) == (P18_UID, P18_COUNTER)


def test_the_p18_message_read_with_an_empty_mac_input_is_a_bad_mac():
    msg, _ = p18_url_and_input_offset()
    read = reader(SunLayout(), {P18_UID: (ZERO, ZERO)}).classify(RawRead(P18_UID, msg))
    assert isinstance(read, CardRefused) and read.reason == "bad_mac"


def test_sdmmac_input_offset_after_the_mac_is_malformed_not_a_crash():
    msg, _ = p18_url_and_input_offset()
    with pytest.raises(SunError) as err:
        find_sun(msg, SunLayout(mac_input_offset=len(msg) + 1))
    assert err.value.reason == "malformed" and "SDMMACInputOffset" in str(err.value)
    read = reader(SunLayout(mac_input_offset=len(msg) + 1), {P18_UID: (ZERO, ZERO)}).classify(RawRead(P18_UID, msg))
    assert isinstance(read, CardRefused) and read.reason == "malformed"


def test_random_uid_tag_is_found_by_the_uid_inside_its_picc_data():
    # AN12196 p. 12 message served by a tag answering FF CA with a random ID (08 + 3 random bytes)
    layout = SunLayout(picc_param="e", mac_param="c", random_uid=True)
    url = f"ntag.nxp.com/424?e={P12_PICC}&c={P12_MAC}"
    other_meta = bytes(range(16))
    registry = {P12_UID: (ZERO, ZERO), "04AABBCCDDEEFF": (other_meta, other_meta)}
    r = reader(layout, registry, meta_read_keys=lambda: [other_meta, ZERO])
    read = r.classify(RawRead("08A1B2C3", message(url)))
    assert type(read) is CardRead and (read.uid, read.sun_counter, read.sun_verified) == (P12_UID, 61, True)
    replay = r.classify(RawRead("08D4E5F6", message(url)))     # the same message again: a copy
    assert isinstance(replay, CardRefused) and (replay.uid, replay.reason) == (P12_UID, "replayed")


def test_random_uid_tag_with_a_forged_mac_is_refused_under_its_real_uid():
    layout = SunLayout(picc_param="e", mac_param="c", random_uid=True)
    url = f"ntag.nxp.com/424?e={P12_PICC}&c={'0' * 16}"
    r = reader(layout, {P12_UID: (ZERO, ZERO)}, meta_read_keys=lambda: [ZERO])
    read = r.classify(RawRead("08A1B2C3", message(url)))
    assert isinstance(read, CardRefused) and (read.uid, read.reason) == (P12_UID, "bad_mac")


def test_random_uid_without_the_meta_read_key_stays_an_unknown_uid_only_tag():
    layout = SunLayout(picc_param="e", mac_param="c", random_uid=True)
    url = f"ntag.nxp.com/424?e={P12_PICC}&c={P12_MAC}"
    read = reader(layout, {P12_UID: (ZERO, ZERO)}, meta_read_keys=lambda: [bytes(range(16))]).classify(
        RawRead("08A1B2C3", message(url)))
    assert type(read) is CardRead and read.uid == "08A1B2C3" and read.uid_only and not read.sun_verified


@pytest.mark.parametrize("raw, reason", [
    (RawRead(P12_UID, None, ("no_ndef_app", "no NDEF application (SELECT answered SW 6A82)")), "no_ndef_app"),
    (RawRead(P12_UID, None, ("read_error", "READ BINARY at 0 failed with SW 6985")), "read_error"),
    (RawRead(P12_UID, message("box.example/t?id=42")), "no_sun"),
    (RawRead(P12_UID, b""), "no_sun"),
    (RawRead(P12_UID, message(f"box.example/t?picc_data={P12_PICC}&cmac={P12_MAC[:-2]}")), "malformed"),
    (RawRead(P12_UID, b"\xd1\x01\x40U\x04short"), "read_error"),
    (RawRead(P12_UID, message(f"b.example/?picc_data={P12_PICC}&cmac={P12_MAC}&cmac={P12_MAC}")), "malformed"),
])
@pytest.mark.parametrize("allow_uid_only", [True, False])
def test_keyed_uid_without_a_sun_message_is_refused_whatever_the_site_policy(raw, reason, allow_uid_only):
    read = reader(SunLayout(), {P12_UID: (ZERO, ZERO)}, allow_uid_only=allow_uid_only).classify(raw)
    assert isinstance(read, CardRefused)
    assert (read.uid, read.reason, read.sun_verified, read.uid_only) == (P12_UID, reason, False, False)
    assert read.detail


@pytest.mark.parametrize("allow_uid_only", [True, False])
def test_unkeyed_uid_follows_the_site_policy(allow_uid_only):
    read = reader(SunLayout(), {}, allow_uid_only=allow_uid_only).classify(
        RawRead("04A1B2C3D4E5F6", None, ("no_ndef_app", "no NDEF application")))
    assert read.uid_only and not read.sun_verified
    assert (type(read) is CardRead) == allow_uid_only
    if not allow_uid_only:
        assert read.reason == "uid_only_not_allowed"


@pytest.mark.parametrize("kwargs, complaint", [
    ({"url_style": "fragment"}, "url_style"),
    ({"picc_param": ""}, "picc_param"),
    ({"mac_param": "c&d"}, "mac_param"),
    ({"picc_param": "x", "mac_param": "x"}, "differ"),
    ({"picc_segment": 1, "mac_segment": 1}, "differ"),
    ({"mac_input_offset": -1}, "SDMMACInputOffset"),
])
def test_impossible_layouts_are_refused_with_what_is_wrong(kwargs, complaint):
    with pytest.raises(ValueError, match=complaint):
        SunLayout(**kwargs)


def test_bracketed_host_is_no_sun_message_not_a_crash():
    # issue 19 item 9: urllib raised ValueError on "[" in the host and the read was dropped silently
    msg = message(f"[x.example/t?picc_data={P12_PICC}&cmac={P12_MAC}")
    assert find_sun(msg, SunLayout()).picc_hex == P12_PICC
    assert find_sun(message("[x.example/t/a/b"), SunLayout(url_style="path")) is None


@pytest.mark.parametrize("allow_uid_only", [True, False])
@pytest.mark.parametrize("uid, keys, reason", [
    (P12_UID, (bytes(range(16)), ZERO), "decrypt"),            # the message was sealed under another meta key
    ("04AABBCCDDEEFF", (ZERO, ZERO), "uid_mismatch"),          # a genuine message copied onto another keyed tag
])
def test_a_keyed_uid_serving_another_tags_sun_message_is_refused_not_taken_by_its_uid(uid, keys, reason,
                                                                                      allow_uid_only):
    counters: dict[str, int] = {}
    r = reader(SunLayout(picc_param="e", mac_param="c"), {uid: keys}, counters=counters, allow_uid_only=allow_uid_only)
    read = r.classify(RawRead(uid, message(f"ntag.nxp.com/424?e={P12_PICC}&c={P12_MAC}")))
    assert isinstance(read, CardRefused)
    assert (read.uid, read.reason, read.sun_verified, read.uid_only) == (uid, reason, False, False)
    assert counters == {}

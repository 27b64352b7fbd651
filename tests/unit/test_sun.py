"""NTAG 424 DNA SUN verification against NXP AN12196's published examples."""
import pytest

from drivers.cards.sun import (
    SunError,
    SunVerifier,
    decrypt_picc_data,
    make_sun_message,
    session_mac_key,
    verify_sun,
)

ZERO = bytes(16)
# AN12196 Table 2/4: https://ntag.nxp.com/424?e=EF963FF7828658A599F3041510671E88&c=94EED9EE65337086
AN_PICC, AN_MAC, AN_UID, AN_COUNTER = "EF963FF7828658A599F3041510671E88", "94EED9EE65337086", "04DE5F1EACC040", 61


def test_an12196_picc_data_decrypts_to_uid_and_counter():
    message = decrypt_picc_data(ZERO, bytes.fromhex(AN_PICC))
    assert (message.uid, message.counter) == (AN_UID, AN_COUNTER)


def test_an12196_session_keys():
    # Table 4 (zero key) and Table 1 (non-zero key, UID 04C767F2066180, counter 1)
    assert session_mac_key(ZERO, bytes.fromhex(AN_UID), AN_COUNTER).hex().upper() == "3FB5F6E3A807A03D5E3570ACE393776F"
    table1 = session_mac_key(bytes.fromhex("5ACE7E50AB65D5D51FD5BF5A16B8205B"), bytes.fromhex("04C767F2066180"), 1)
    assert table1.hex().upper() == "3A3E8110E05311F7A3FCF0D969BF2B48"


def test_an12196_mac_over_empty_input_verifies():
    assert verify_sun(AN_PICC, AN_MAC, ZERO, ZERO).counter == AN_COUNTER


def test_an12196_mac_over_encrypted_file_data_verifies():
    # Table 5/6: the MAC covers the mirrored "<ENC file data>&cmac=" text
    message = verify_sun("FD91EC264309878BE6345CBE53BADF40", "ECC1E7F6C6C73BF6", ZERO, ZERO,
                         mac_input=b"CEE9A53E3E463EF1F459635736738962&cmac=")
    assert (message.uid, message.counter) == ("04958CAA5C5E80", 8)


def test_make_sun_message_reproduces_the_an12196_mac():
    _, mac = make_sun_message(AN_UID, AN_COUNTER, ZERO, ZERO)
    assert mac == AN_MAC


def test_tampered_mac_is_refused():
    tampered = ("95" + AN_MAC[2:])
    with pytest.raises(SunError) as err:
        verify_sun(AN_PICC, tampered, ZERO, ZERO)
    assert err.value.reason == "bad_mac"


def test_wrong_file_key_is_refused():
    with pytest.raises(SunError) as err:
        verify_sun(AN_PICC, AN_MAC, ZERO, bytes(range(16)))
    assert err.value.reason == "bad_mac"


def test_wrong_meta_key_is_refused():
    with pytest.raises(SunError) as err:
        verify_sun(AN_PICC, AN_MAC, bytes(range(16)), ZERO)
    assert err.value.reason == "decrypt"


@pytest.mark.parametrize("picc, mac", [("XYZ", AN_MAC), (AN_PICC[:-2], AN_MAC), (AN_PICC, AN_MAC + "00")])
def test_malformed_message_names_the_problem(picc, mac):
    with pytest.raises(SunError) as err:
        verify_sun(picc, mac, ZERO, ZERO)
    assert err.value.reason == "malformed"


def test_verifier_accepts_increasing_counters_and_refuses_rollback():
    meta, file = bytes(range(16)), bytes(range(16, 32))
    counters: dict[str, int] = {}
    verifier = SunVerifier(counters)
    first = make_sun_message("04AABBCCDDEEFF", 5, meta, file)
    second = make_sun_message("04AABBCCDDEEFF", 6, meta, file)
    assert verifier.verify(*first, meta, file).counter == 5
    assert verifier.verify(*second, meta, file).counter == 6
    assert counters == {"04AABBCCDDEEFF": 6}
    for replay in (first, second):   # an older message and the very same one
        with pytest.raises(SunError) as err:
            verifier.verify(*replay, meta, file)
        assert err.value.reason == "replayed"
    assert counters == {"04AABBCCDDEEFF": 6}


def test_verifier_memory_lives_in_the_callers_mapping():
    meta = file = ZERO
    stored = {AN_UID: AN_COUNTER}    # e.g. reloaded from the journal after a restart
    with pytest.raises(SunError) as err:
        SunVerifier(stored).verify(AN_PICC, AN_MAC, meta, file)
    assert err.value.reason == "replayed"


def test_message_for_another_uid_is_refused():
    with pytest.raises(SunError) as err:
        SunVerifier().verify(AN_PICC, AN_MAC, ZERO, ZERO, expected_uid="04AABBCCDDEEFF")
    assert err.value.reason == "uid_mismatch"


def test_bad_keys_are_reported_not_used():
    with pytest.raises(ValueError, match="16 bytes"):
        verify_sun(AN_PICC, AN_MAC, b"short", ZERO)


# -- the NDEF message a SUN tag carries, read as an NFC Forum Type 4 Tag --------------------------

from drivers.cards.ndef import NdefError, NotType4Tag, read_ndef, uri_records  # noqa: E402
from drivers.cards.sun_url import SunLayout, find_sun  # noqa: E402
from drivers.cards.virtual_card import VirtualCard, sun_ndef_file  # noqa: E402


def card_transmit(card: VirtualCard):
    """The card's APDU handler as a transmit function: the Type 4 logic without a reader."""
    def transmit(apdu: bytes) -> tuple[bytes, int]:
        response = card.answer(apdu)
        return response[:-2], int.from_bytes(response[-2:], "big")
    return transmit


def test_type4_read_returns_a_fresh_verifiable_sun_message_each_time():
    keys = (bytes(range(16)), bytes(range(16, 32)))
    card = VirtualCard("04AABBCCDDEEFF", sun_keys=keys, counter=9)
    transmit = card_transmit(card)
    verifier = SunVerifier()
    for expected in (10, 11):
        params = find_sun(read_ndef(transmit), SunLayout())
        assert verifier.verify(params.picc_hex, params.mac_hex, *keys).counter == expected


def test_type4_read_is_chunked_to_the_tags_maximum_read_length():
    card = VirtualCard("04AABBCCDDEEFF", sun_keys=(ZERO, ZERO))
    sent: list[bytes] = []
    answer = card_transmit(card)

    def transmit(apdu: bytes) -> tuple[bytes, int]:
        sent.append(apdu)
        return answer(apdu)

    message = read_ndef(transmit)
    assert message == card.last_ndef_file[2:] and len(message) > 0x3B
    reads = [apdu for apdu in sent if apdu[1] == 0xB0]
    assert len(reads) >= 3 and all(apdu[4] <= 0x3B for apdu in reads)   # CC says MLe = 0x3B


def test_uid_only_card_is_not_a_type4_tag():
    with pytest.raises(NotType4Tag):
        read_ndef(card_transmit(VirtualCard("04AABBCCDDEEFF")))


def test_sun_parameters_are_found_under_the_configured_names():
    message = sun_ndef_file("box.example/t", AN_PICC, AN_MAC)[2:]
    assert [r.uri for r in uri_records(message)] == [f"https://box.example/t?picc_data={AN_PICC}&cmac={AN_MAC}"]
    found = find_sun(message, SunLayout())
    assert (found.picc_hex, found.mac_hex, found.mac_input) == (AN_PICC, AN_MAC, b"")
    assert find_sun(message, SunLayout(picc_param="e", mac_param="c")) is None


def test_truncated_ndef_record_is_reported():
    message = sun_ndef_file("box.example/t", AN_PICC, AN_MAC)[2:]
    with pytest.raises(NdefError, match="past the end"):
        uri_records(message[:-5])

"""Fuzzing the parsers of card answers: whatever a tag returns, the only errors are the named refusals.

Issue 19 item 9: an NDEF URL with a bracketed host made urllib raise ValueError, and the read was
dropped with no alarm. Here every parser is held to NotType4Tag / NdefError / SunError, each with a
reason the cloned-tag alarm can name.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.cards.ndef import NdefError, NotType4Tag, read_ndef, uri_records
from drivers.cards.pcsc import REFUSAL_REASONS
from drivers.cards.sun import SunError
from drivers.cards.sun_url import SunLayout, find_sun
from drivers.cards.virtual_card import uri_ndef_file

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LAYOUTS = [SunLayout(), SunLayout(picc_param="e", mac_param="c"), SunLayout(url_style="path"),
           SunLayout(url_style="path", picc_segment=0, mac_segment=2), SunLayout(mac_input_offset=7),
           SunLayout(mac_input_offset=0, random_uid=True)]
PICC, MAC = "EF963FF7828658A599F3041510671E88", "94EED9EE65337086"
# URL pieces that broke or could break a parser: brackets, escapes, separators, placeholders
URL_ALPHABET = st.sampled_from(list("[]@:/?#&=%;.") + ["amp;", "e=", "c=", "picc_data=", "cmac=", PICC, MAC,
                                                       "https://", "://", "\x00", "\xff", "é"])
url_text = st.lists(URL_ALPHABET | st.text(max_size=4), max_size=20).map("".join)


def parses_or_refuses(message: bytes, layout: SunLayout) -> None:
    try:
        fields = find_sun(message, layout)
    except (NdefError, SunError) as e:
        assert e.reason in REFUSAL_REASONS and str(e)
        return
    if fields is not None:
        assert isinstance(fields.picc_hex, str) and isinstance(fields.mac_hex, str)
        assert isinstance(fields.mac_input, bytes)


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(LAYOUTS))
def test_any_ndef_message_bytes(message, layout):
    parses_or_refuses(message, layout)


@FUZZ
@given(url_text, st.integers(0, 0x24), st.sampled_from(LAYOUTS))
def test_any_url_in_a_well_formed_record(body, prefix_code, layout):
    parses_or_refuses(uri_ndef_file(body, prefix_code)[2:], layout)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 7), st.binary(max_size=3), url_text), min_size=1, max_size=4))
def test_records_with_any_header_bits(records):
    message = b""
    for flags, rtype, body in records:
        payload = b"\x04" + body.encode("utf-8")
        header = (flags << 5) | 0x10 | 0x01          # MB/ME/CF bits vary, short record, well-known
        message += bytes([header & 0xFF, len(rtype)]) + bytes([len(payload) & 0xFF]) + rtype + payload
    for layout in LAYOUTS:
        parses_or_refuses(message, layout)
    try:
        uri_records(message)
    except NdefError as e:
        assert e.reason == "read_error"


answers = st.lists(st.tuples(st.binary(max_size=70), st.integers(0, 0xFFFF)), max_size=40)


@FUZZ
@given(answers, st.tuples(st.binary(max_size=70), st.integers(0, 0xFFFF)))
def test_read_ndef_against_any_answers_ends_with_a_message_or_a_named_refusal(script, last):
    """A card answering anything at all: the read ends (bounded APDUs) with bytes or a named error."""
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> tuple[bytes, int]:
        sent.append(apdu)
        return script[len(sent) - 1] if len(sent) <= len(script) else last

    try:
        message = read_ndef(transmit)
    except (NotType4Tag, NdefError) as e:
        assert e.reason in REFUSAL_REASONS and str(e)
    else:
        assert isinstance(message, bytes) and len(message) <= 4096
    assert len(sent) < 4200          # NLEN is capped: a card cannot hold the reader byte by byte for minutes

"""Fuzzing the parsers of card answers: whatever a tag returns, the only errors are the named refusals.

Issue 19 item 9: an NDEF URL with a bracketed host made urllib raise ValueError, and the read was
dropped with no alarm. Here every parser is held to NotType4Tag / NdefError / SunError, each with a
reason the cloned-tag alarm can name. The oracles (`parses_or_refuses`, `read_ndef_oracle`,
`transmit_oracle`, `sun_oracle`) also run >= 1,000,000 inputs each in tools/fuzz_long.py.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartcard import scard

from drivers.cards.ndef import NdefError, NotType4Tag, read_ndef, uri_records
from drivers.cards.pcsc import REFUSAL_REASONS, CardError, CardGone, PcscError, transmit_result
from drivers.cards.sun import SunError, SunVerifier, make_sun_message
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


def parses_or_refuses(message: bytes, layout: SunLayout) -> bool:
    """True: read (SUN fields, or none offered); False: refused with a reason."""
    try:
        fields = find_sun(message, layout)
    except (NdefError, SunError) as e:
        assert e.reason in REFUSAL_REASONS and str(e)
        return False
    if fields is not None:
        assert isinstance(fields.picc_hex, str) and isinstance(fields.mac_hex, str)
        assert isinstance(fields.mac_input, bytes)
    return True


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
    read_ndef_oracle(script, last)


def read_ndef_oracle(script: list[tuple[bytes, int]], last: tuple[bytes, int]) -> bool:
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> tuple[bytes, int]:
        sent.append(apdu)
        return script[len(sent) - 1] if len(sent) <= len(script) else last

    try:
        message = read_ndef(transmit)
    except (NotType4Tag, NdefError) as e:
        assert e.reason in REFUSAL_REASONS and str(e)
        message = None
    else:
        assert isinstance(message, bytes) and len(message) <= 4096
    assert len(sent) < 4200          # NLEN is capped: a card cannot hold the reader byte by byte for minutes
    return message is not None


# --- what pyscard hands back for one APDU: (hresult, response bytes as ints) ---
HRESULTS = sorted({v for k, v in vars(scard).items() if k.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_"))
                   and isinstance(v, int)} | {scard.SCARD_S_SUCCESS})


def transmit_oracle(hresult: int, response: list[int]) -> bool:
    """One SCardTransmit result: (data, SW), None (no status word), or the driver's own three errors."""
    try:
        answer = transmit_result(hresult, response)
    except (CardGone, CardError) as e:
        assert hresult != scard.SCARD_S_SUCCESS and (isinstance(e, CardGone) or str(e))
        return False
    except PcscError as e:
        assert e.hresult == hresult and str(e)
        return False
    assert hresult == scard.SCARD_S_SUCCESS
    if answer is None:
        assert len(response) < 2
        return False
    data, sw = answer
    assert data + sw.to_bytes(2, "big") == bytes(response)
    return True


@FUZZ
@given(st.sampled_from(HRESULTS) | st.integers(-2**31, 2**32 - 1), st.lists(st.integers(0, 255), max_size=300))
def test_any_transmit_result_is_an_answer_or_one_of_the_drivers_errors(hresult, response):
    transmit_oracle(hresult, response)
    transmit_oracle(scard.SCARD_S_SUCCESS, response)


# --- SUN messages: a forged or replayed one is refused, only a fresh genuine one is accepted ---
SUN_UID, META, FILE = "04DE5F1EACC040", bytes(range(16)), bytes(range(16, 32))


def sun_oracle(verifier: SunVerifier, picc_hex: str, mac_hex: str, mac_input: bytes,
               genuine: dict[tuple[str, str, bytes], int]) -> bool:
    """`genuine` maps every (PICCData, SDMMAC, MAC input) a real tag made to its counter; anything else
    must be refused with a reason, and a genuine one only while its counter is fresh."""
    last = verifier.last_counter(SUN_UID)
    try:
        message = verifier.verify(picc_hex, mac_hex, META, FILE, expected_uid=SUN_UID, mac_input=mac_input)
    except SunError as e:
        assert e.reason in REFUSAL_REASONS and str(e)
        return False
    counter = genuine.get((picc_hex.upper(), mac_hex.upper(), mac_input))
    assert counter is not None, "a SUN message no genuine tag made was accepted"
    assert message.counter == counter and (last is None or counter > last)
    assert verifier.last_counter(SUN_UID) == counter
    return True


def sun_message(counter: int, mac_input: bytes = b"") -> tuple[str, str]:
    return make_sun_message(SUN_UID, counter, META, FILE, mac_input)


HEXISH = st.text(st.sampled_from("0123456789abcdefABCDEF g\u00e9"), max_size=40)


@FUZZ
@given(st.lists(st.one_of(
    st.tuples(st.just("genuine"), st.integers(0, 0xFFFFFF), st.binary(max_size=8)),
    st.tuples(st.just("flip"), st.integers(0, 0xFFFFFF), st.integers(0, 47), st.sampled_from("0123456789ABCDEF")),
    st.tuples(st.just("any"), HEXISH, HEXISH, st.binary(max_size=8))), max_size=8))
def test_only_fresh_genuine_sun_messages_are_accepted(steps):
    sun_steps_oracle(steps)


def sun_steps_oracle(steps: list[tuple]) -> tuple[int, int]:
    """Steps against one verifier: ("genuine", counter, MAC input), ("flip", counter, digit, new digit)
    or ("any", PICCData text, SDMMAC text, MAC input). Returns (accepted, refused)."""
    verifier, genuine, accepted = SunVerifier(), {}, 0
    for step in steps:
        if step[0] == "any":
            accepted += sun_oracle(verifier, step[1], step[2], step[3], genuine)
            continue
        mac_input = step[2] if step[0] == "genuine" else b""
        picc, mac = sun_message(step[1], mac_input)
        genuine[(picc, mac, mac_input)] = step[1]
        if step[0] == "flip":         # one hex digit changed: a forgery unless the digit was already there
            text = (picc + mac)
            text = text[:step[2]] + step[3] + text[step[2] + 1:]
            picc, mac = text[:32], text[32:]
        accepted += sun_oracle(verifier, picc, mac, mac_input, genuine)
    return accepted, len(steps) - accepted

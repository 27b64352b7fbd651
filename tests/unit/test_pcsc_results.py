"""What a PC/SC transfer result means for one card read (issue 18 item 3): a tag lifted mid-read is
"card gone" — the officer is asked to present it again — not a fault of the reader."""
import pytest
from smartcard import scard

from drivers.cards.pcsc import CardError, CardGone, PcscError, transmit_result


@pytest.mark.parametrize("hresult", [
    0x80100016,                         # SCARD_E_NOT_TRANSACTED, "Transaction failed": what a lifted tag gave
    scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNRESPONSIVE_CARD, scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_E_COMM_DATA_LOST,
    scard.SCARD_F_COMM_ERROR, scard.SCARD_E_READER_UNAVAILABLE,     # the reader itself was unplugged
])
def test_a_card_or_reader_that_left_is_card_gone(hresult):
    with pytest.raises(CardGone):
        transmit_result(hresult, [])


def test_pcscd_gone_is_a_service_error():
    with pytest.raises(PcscError, match="0x8010001D"):
        transmit_result(scard.SCARD_E_NO_SERVICE, [])


def test_another_failure_is_a_card_error_naming_the_code():
    with pytest.raises(CardError, match="0x80100004"):
        transmit_result(scard.SCARD_E_INVALID_PARAMETER, [])


@pytest.mark.parametrize("response, result", [([0x90, 0x00], (b"", 0x9000)), ([1, 2, 0x6A, 0x82], (b"\x01\x02", 0x6A82)),
                                              ([], None), ([0x90], None)])
def test_answers_split_into_data_and_status_word(response, result):
    assert transmit_result(scard.SCARD_S_SUCCESS, response) == result

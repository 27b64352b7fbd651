"""[devices.cards]: the SUN layout keys read into typed values, and a bad one names what is wrong."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "handover.toml.example"
# What pcsc-lite calls the contactless slots of the readers docs/deploy.md names
ACR122U = "ACS ACR122U PICC Interface 00 00"
ACR1252U = "ACS ACR1252 1S CL Reader [ACR1252 Dual Reader PICC] 00 00"
ACR1252U_SAM = "ACS ACR1252 1S CL Reader [ACR1252 Dual Reader SAM] 00 01"


def load(tmp_path: Path, cards: str):
    path = tmp_path / "handover.toml"
    path.write_text(f'[site]\nid = "b"\n[devices.cards]\ndriver = "pcsc"\n{cards}', encoding="utf-8")
    return load_config(path).devices.cards


def test_defaults_are_the_layout_existing_tags_use(tmp_path):
    c = load(tmp_path, "")
    assert (c.reader, c.sun_url_style, c.sun_picc_param, c.sun_mac_param) == (None, "query", "picc_data", "cmac")
    assert (c.sun_mac_input_offset, c.sun_random_uid) == (None, False)


def test_the_examples_reader_filter_matches_both_documented_readers_and_not_the_sam_slot():
    wanted = load_config(EXAMPLE).devices.cards.reader.casefold()
    assert wanted in ACR122U.casefold() and wanted in ACR1252U.casefold()
    assert wanted not in ACR1252U_SAM.casefold()


def test_every_layout_key_reads(tmp_path):
    c = load(tmp_path, 'sun_url_style = "path"\nsun_picc_param = "e"\nsun_mac_param = "c"\nsun_picc_segment = 1\n'
                       'sun_mac_segment = 2\nsun_mac_input_offset = 0x2F\nsun_random_uid = true\n')
    assert (c.sun_url_style, c.sun_picc_param, c.sun_mac_param) == ("path", "e", "c")
    assert (c.sun_picc_segment, c.sun_mac_segment, c.sun_mac_input_offset, c.sun_random_uid) == (1, 2, 0x2F, True)


@pytest.mark.parametrize("line, complaint", [
    ('sun_url_style = "fragment"', "devices.cards.sun_url_style: 'fragment' is not allowed"),
    ('sun_picc_param = "a&b"', "devices.cards.sun_picc_param: 'a&b' is not allowed; expected a URL parameter name"),
    ('sun_mac_param = ""', "devices.cards.sun_mac_param"),
    ('sun_mac_param = "picc_data"', "devices.cards.sun_mac_param: must differ from sun_picc_param"),
    ("sun_mac_segment = -2", "devices.cards.sun_mac_segment: must differ from sun_picc_segment"),
    ("sun_mac_input_offset = -1", "devices.cards.sun_mac_input_offset: -1 is not allowed; expected an integer"),
    ("sun_random_uid = 1", "devices.cards.sun_random_uid: 1 is not allowed; expected true or false"),
    ('sun_mac_key = "00"', "devices.cards.sun_mac_key: unknown key"),
])
def test_bad_layout_keys_name_what_is_wrong(tmp_path, line, complaint):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, line + "\n")
    assert complaint in str(e.value)

"""The third-party pyfingerprint library as an independent client: proof the emulator speaks the real protocol.

pyfingerprint names transfers from the module's point of view: its downloadCharacteristics is the datasheet's
UpChar (0x08, module -> host) and its uploadCharacteristics is DownChar (0x09, host -> module).
"""
import pytest
from pyfingerprint.pyfingerprint import PyFingerprint

from drivers.fingerprint.emulator import ModuleEmulator, finger_template


@pytest.fixture
def module():
    emulator = ModuleEmulator(capacity=150, packet_size=64, password=0x00C0FFEE)
    yield emulator
    emulator.stop()


def capture(sensor: PyFingerprint, buffer: int) -> None:
    while not sensor.readImage():
        pass
    sensor.convertImage(buffer)


def test_pyfingerprint_verifies_enrols_searches_and_counts(module):
    sensor = PyFingerprint(module.plug(), 57600, 0xFFFFFFFF, 0x00C0FFEE)
    assert sensor.verifyPassword() is True
    assert sensor.getStorageCapacity() == 150
    assert sensor.getMaxPacketSize() == 64
    assert sensor.getTemplateCount() == 0

    module.tap("escort-li")
    module.tap("escort-li")
    capture(sensor, 1)
    while sensor.readImage():  # wait for the finger to lift, as pyfingerprint's own example does
        pass
    capture(sensor, 2)
    assert sensor.compareCharacteristics() > 0
    assert sensor.createTemplate() is True
    slot = sensor.storeTemplate()  # picks the first free slot through ReadIndexTable
    assert slot == 0
    assert sensor.getTemplateCount() == 1
    assert sensor.getTemplateIndex(0)[0] is True

    module.tap("escort-li")
    capture(sensor, 1)
    assert sensor.searchTemplate() == (0, 180)
    module.tap("stranger")
    capture(sensor, 1)
    assert sensor.searchTemplate() == (-1, -1)


def test_pyfingerprint_wrong_password_is_refused(module):
    sensor = PyFingerprint(module.plug(), 57600, 0xFFFFFFFF, 0)
    assert sensor.verifyPassword() is False
    with pytest.raises(Exception, match="Unknown error 0x21"):  # locked until the password is verified
        sensor.getTemplateCount()


def test_pyfingerprint_moves_templates_both_ways_in_packet_sized_pieces(module):
    sensor = PyFingerprint(module.plug(), 57600, 0xFFFFFFFF, 0x00C0FFEE)
    sensor.verifyPassword()
    template = list(finger_template("head-office", 512))
    assert sensor.uploadCharacteristics(1, template) is True  # DownChar, then reads it back with UpChar
    sensor.storeTemplate(20, 1)
    assert module.library[20] == bytes(template)

    sensor.loadTemplate(20, 2)
    assert sensor.downloadCharacteristics(2) == template
    assert sensor.deleteTemplate(20) is True
    assert sensor.getTemplateCount() == 0
    with pytest.raises(Exception, match="The template could not be read"):  # 0x0C: the slot is empty now
        sensor.loadTemplate(20, 1)

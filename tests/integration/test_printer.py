"""The receipt printer through python-escpos' File printer: what reaches the device is checked byte by byte."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from drivers.printer.escpos import EscposPrinter, FontChoice, find_cjk_font

ROOT = Path(__file__).resolve().parents[2]
TITLE = "押运交接报告"
LINES = ["任务: T20261122-01 派送", "车辆: 沪A12345", "押运员: 张伟, 李强", "款箱: 12 个 (计划 12)", "异常: 无"]


def raster_images(stream: bytes):
    """Decode every GS v 0 raster image in an ESC/POS stream into (width_dots, bits[h, w])."""
    images, at = [], 0
    while (at := stream.find(b"\x1dv0", at)) != -1:
        mode, xl, xh, yl, yh = stream[at + 3:at + 8]
        width_bytes, height = xl + 256 * xh, yl + 256 * yh
        body = np.frombuffer(stream[at + 8:at + 8 + width_bytes * height], np.uint8)
        images.append((width_bytes * 8, mode, np.unpackbits(body.reshape(height, width_bytes), axis=1)))
        at += 8 + width_bytes * height
    return images


@pytest.mark.parametrize("width", [384, 576])
async def test_receipt_reaches_the_printer_as_a_raster_image_then_a_cut(tmp_path, width, capfd):
    device = tmp_path / "lp0"
    printer = EscposPrinter("file", width=width, path=str(device))
    await printer.print_lines(TITLE, LINES)
    stream = device.read_bytes()
    assert stream.startswith(b"\x1b@")                               # printer initialised first
    images = raster_images(stream)
    assert images, "no GS v 0 raster image in the stream"
    assert all(w == width and mode == 0 for w, mode, _ in images)
    assert stream.endswith(b"\x1dV\x00")                            # full cut after the receipt
    # what went to paper is exactly the receipt as drawn (a set bit is a black dot)
    printed = np.vstack([bits for _, _, bits in images])
    drawn = np.array(printer.render(TITLE, LINES)) == 0
    assert printed.shape == drawn.shape and (printed == drawn).all()
    assert printer.health().state == "connected"
    assert capfd.readouterr().out == ""                              # no library chatter on stdout


def test_chinese_renders_as_glyphs_not_tofu(tmp_path):
    font_choice = find_cjk_font()
    assert font_choice.is_cjk, "no CJK font found: install fonts-noto-cjk"
    font = ImageFont.truetype(font_choice.path, 24, index=font_choice.index)
    notdef = np.array(font.getmask("\ue000"))                       # private use: the font's .notdef box
    masks = [np.array(font.getmask(ch)) for ch in "押运交接"]
    assert all(m.sum() > 0 for m in masks)
    assert all(m.shape != notdef.shape or (m != notdef).any() for m in masks)
    assert len({m.tobytes() for m in masks}) == 4                   # four different glyphs, not four boxes

    png = tmp_path / "receipt.png"
    EscposPrinter("file", path=str(tmp_path / "unused")).render_png(TITLE, LINES, png)
    image = np.array(Image.open(png).convert("L"))
    assert image.shape[1] == 384
    title_band = image[:45]
    assert (title_band < 128).sum() > 300                           # the title has ink
    assert (image[:, :8] > 128).all()                               # and respects the margin


async def test_unplugged_printer_is_reported_and_recovers_when_back(tmp_path):
    device = tmp_path / "usb" / "lp0"                                # the device node is not there yet
    printer = EscposPrinter("file", path=str(device))
    await printer.print_lines(TITLE, LINES)                          # does not raise
    assert printer.health().state == "missing"
    assert "lp0" in printer.health().last_error
    device.parent.mkdir()
    await printer.print_lines(TITLE, LINES)
    assert printer.health().state == "connected"
    assert raster_images(device.read_bytes())


def test_without_a_cjk_font_it_says_so():
    printer = EscposPrinter("file", path="/dev/null", font=FontChoice(None))
    assert printer.health().state == "degraded"
    assert "fonts-noto-cjk" in printer.health().last_error


def test_bad_configuration_is_refused_by_name():
    with pytest.raises(ValueError, match="'parallel'"):
        EscposPrinter("parallel", path="/dev/lp0")
    with pytest.raises(ValueError, match="500"):
        EscposPrinter("file", width=500, path="/dev/null")


def test_device_parameters_are_checked_by_name():
    with pytest.raises(ValueError, match="'devfile'"):
        EscposPrinter("file", devfile="/dev/usb/lp0")
    with pytest.raises(ValueError, match="'port'"):
        EscposPrinter("serial", baudrate=19200)
    with pytest.raises(ValueError, match="'product_id'"):
        EscposPrinter("usb", vendor_id=0x0416)


PRINT_IN_A_FRESH_PROCESS = """
import asyncio, logging, sys
from pathlib import Path
root = logging.getLogger()
before = (list(root.handlers), root.level)
from drivers.printer.escpos import EscposPrinter, escpos_printers
escpos_printers(Path(sys.argv[2]))               # python-escpos imported, as the first print does
import escpos.capabilities                        # the module that calls basicConfig and mkdtemp
assert (list(root.handlers), root.level) == before, f"root logger changed: {root.handlers} level {root.level}"
logging.basicConfig(level=logging.INFO)          # as the agent's CLI does
configured = list(root.handlers)
printer = EscposPrinter("file", path=sys.argv[1], cache_dir=Path(sys.argv[2]))
asyncio.run(printer.print_lines("T", ["x"]))
assert printer.health().state == "connected", printer.health()
assert root.handlers == configured, f"root logger changed: {root.handlers}"
print("printed")
"""


def test_printing_leaves_the_root_logger_and_tmp_alone_and_caches_in_the_state_dir(tmp_path):
    """python-escpos calls logging.basicConfig() and mkdtemp() when imported: the agent's log lines were
    printed twice (its own handler and escpos' one) and each start left a dir in /tmp."""
    tmp, cache = tmp_path / "tmp", tmp_path / "state" / "cache"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    env.pop("ESCPOS_CAPABILITIES_PICKLE_DIR", None)
    for run in range(2):                    # the second start reads the pickle the first one left
        out = subprocess.run([sys.executable, "-c", PRINT_IN_A_FRESH_PROCESS, str(tmp_path / f"lp{run}"),
                              str(cache)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout == "printed\n", out.stderr
        logged = out.stderr.splitlines()
        assert len(logged) == len(set(logged)) and "WARNING" not in out.stderr, "each line once, through one handler"
        assert list(tmp.iterdir()) == [], "no temporary dir left behind"
        assert [p.name for p in cache.iterdir()] == [f"{platform.python_version()}.capabilities.pickle"]
        assert (tmp_path / f"lp{run}").read_bytes().endswith(b"\x1dV\x00")

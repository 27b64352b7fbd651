"""Receipt printer for the handover report, through python-escpos (file, serial or USB device).

Cheap receipt printers carry no Chinese font (or one in a code page python-escpos cannot pick
reliably), so the receipt is drawn as an image with a CJK font and sent as an ESC/POS raster
image (GS v 0), then cut. The same drawing can be saved as PNG for people to look at.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.health import HealthMixin

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

PAPER_DOTS = (384, 576)       # 58 mm and 80 mm paper at 203 dpi
MARGIN = 8
KINDS = {"file": "File", "serial": "Serial", "usb": "Usb"}      # python-escpos' printer classes
# our configuration names -> python-escpos' argument names, per kind; all but baudrate are required
PARAMS = {
    "file": {"path": "devfile"},
    "serial": {"port": "devfile", "baudrate": "baudrate"},
    "usb": {"vendor_id": "idVendor", "product_id": "idProduct"},
}


@dataclass(frozen=True)
class FontChoice:
    path: str | None          # None: Pillow's built-in font (no Chinese)
    index: int = 0

    @property
    def is_cjk(self) -> bool:
        return self.path is not None


def find_cjk_font() -> FontChoice:
    """Ask fontconfig for a font that covers Simplified Chinese (fonts-noto-cjk or fonts-wqy-*)."""
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}|%{index}|%{lang}", "sans-serif:lang=zh-cn"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return FontChoice(None)
    path, _, rest = out.partition("|")
    index, _, langs = rest.partition("|")
    if path and "zh-cn" in langs.split("|"):
        return FontChoice(path, int(index or 0))
    return FontChoice(None)


_IMPORT = threading.Lock()


def escpos_printers(cache_dir: Path | None):
    """python-escpos' printer module, imported without its side effects: at import it calls
    logging.basicConfig() (a stderr handler on the root logger of a program that has not set up its
    logging yet, whose own set-up then does nothing) and mkdtemp() for its capabilities pickle (a new
    /tmp dir per start, even when ESCPOS_CAPABILITIES_PICKLE_DIR is set: the default is evaluated
    anyway). The pickle goes to cache_dir, so later starts skip the YAML parse; without one it goes
    away with the scratch dir. tempfile's default dir points at the scratch dir only while importing."""
    with _IMPORT:
        if "escpos.printer" in sys.modules:
            return sys.modules["escpos.printer"]
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        base = Path(cache_dir) if cache_dir is not None else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="escpos-import-", dir=base))
        saved_env, saved_tempdir = os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR"), tempfile.tempdir
        os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(base or scratch)
        tempfile.tempdir = str(scratch)          # where its eager mkdtemp() lands, removed below
        try:
            from escpos import printer
        finally:
            tempfile.tempdir = saved_tempdir
            if saved_env is None:
                os.environ.pop("ESCPOS_CAPABILITIES_PICKLE_DIR", None)
            else:
                os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = saved_env
            root.handlers[:] = handlers
            root.setLevel(level)
            shutil.rmtree(scratch, ignore_errors=True)
        return printer


class EscposPrinter(HealthMixin):
    def __init__(self, kind: str = "file", name: str = "printer", width: int = 384,
                 font: FontChoice | None = None, cache_dir: Path | None = None, **params):
        if kind not in KINDS:
            raise ValueError(f"printer kind must be one of {sorted(KINDS)}, got {kind!r}")
        if width not in PAPER_DOTS:
            raise ValueError(f"printer width must be one of {PAPER_DOTS} dots, got {width}")
        unknown = sorted(set(params) - set(PARAMS[kind]))
        if unknown:
            raise ValueError(f"{kind} printer does not take {unknown}; it takes {sorted(PARAMS[kind])}")
        required = [k for k in PARAMS[kind] if k != "baudrate"]
        if missing := [k for k in required if params.get(k) in (None, "")]:
            raise ValueError(f"{kind} printer needs {missing}")
        self.name = name
        self.kind = kind
        self.width = width
        self.params = {PARAMS[kind][k]: v for k, v in params.items()}
        self.font = font or find_cjk_font()
        self.cache_dir = cache_dir            # python-escpos' capabilities pickle (see escpos_printers)
        if not self.font.is_cjk:
            log.warning("%s: no CJK font found (install fonts-noto-cjk): Chinese will print as boxes", name)
            self._set_health("degraded", "no CJK font: install fonts-noto-cjk")

    # --- the Printer interface ---
    async def print_lines(self, title: str, lines: list[str]) -> None:
        await asyncio.to_thread(self._print, title, list(lines))

    def render_png(self, title: str, lines: list[str], path: str | Path) -> None:
        self.render(title, lines).save(path, "PNG")

    # --- drawing ---
    def _font(self, size: int):
        from PIL import ImageFont                     # see render()
        if self.font.path is None:
            return ImageFont.load_default(size)
        return ImageFont.truetype(self.font.path, size, index=self.font.index)

    def render(self, title: str, lines: list[str]) -> Image.Image:
        # Pillow at the first print, as python-escpos: a terminal at rest does not carry it (~3 MB of the 70 MB
        # idle budget, issue 20)
        from PIL import Image, ImageDraw
        title_font, body_font = self._font(30 if self.width == 384 else 40), self._font(22 if self.width == 384 else 28)
        usable = self.width - 2 * MARGIN
        rows: list[tuple[str, object, bool]] = []          # (text, font, centred)
        rows += [(t, title_font, True) for t in wrap(title, title_font, usable)]
        rows.append(("", None, False))                    # rule under the title
        for line in lines:
            rows += [(t, body_font, False) for t in wrap(line, body_font, usable)]
        heights = [int(f.size * 1.35) if f else 12 for _, f, _ in rows]
        image = Image.new("L", (self.width, MARGIN * 2 + sum(heights) + 40), 255)   # room to tear off
        draw = ImageDraw.Draw(image)
        y = MARGIN
        for (text, font, centred), h in zip(rows, heights):
            if font is None:
                draw.line((MARGIN, y + h // 2, self.width - MARGIN, y + h // 2), fill=0, width=2)
            else:
                x = (self.width - draw.textlength(text, font=font)) / 2 if centred else MARGIN
                draw.text((x, y), text, font=font, fill=0)
            y += h
        return image.point(lambda v: 0 if v < 160 else 255).convert("1")   # crisp dots, no dithering

    # --- device ---
    def _print(self, title: str, lines: list[str]) -> None:
        image = self.render(title, lines)
        # imported here, in the print thread, not at start: python-escpos parses its YAML printer
        # database on a first import (~0.2 s here, ~0.7 s on a Pi-class core) before READY otherwise
        device = getattr(escpos_printers(self.cache_dir), KINDS[self.kind])(**self.params)
        media = device.profile.profile_data["media"]
        if media["width"]["pixels"] == "Unknown":
            # the default profile knows no paper width and python-escpos then prints a notice on
            # stdout for every image; tell it ours (a copy: profile data is shared between printers)
            device.profile.profile_data = {**device.profile.profile_data,
                                           "media": {**media, "width": {"pixels": self.width}}}
        try:
            device.open()
            device.hw("INIT")                            # ESC @: clear whatever mode a previous job left
            device.image(image, impl="bitImageRaster")
            device.cut()
        except Exception as exc:                         # unplugged, out of paper, no permission...
            self._set_health("missing", f"{type(exc).__name__}: {exc}".strip()[:300])
            log.warning("%s: receipt not printed: %s", self.name, type(exc).__name__)
            return
        finally:
            try:
                device.close()
            except Exception:                            # closing a vanished device must not hide why
                pass
        self._set_health("connected" if self.font.is_cjk else "degraded")


def wrap(text: str, font, width: int) -> list[str]:
    """Break text to fit `width` pixels; Chinese has no spaces, so break between any characters."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for ch in paragraph:
            if line and font.getlength(line + ch) > width:
                cut = line.rfind(" ") + 1
                if ch.isascii() and ch != " " and line[-1].isascii() and cut > 0:
                    out.append(line[:cut].rstrip())          # keep a Latin word whole
                    line = line[cut:]
                else:
                    out.append(line)
                    line = ""
            line += ch
        out.append(line)
    return out

"""Simulated camera: a generated placeholder face, so a demo shows a 'live snapshot'."""
from __future__ import annotations

import asyncio
import io

from PIL import Image, ImageDraw

from drivers.events import FaceSnapshot
from drivers.health import HealthMixin


class SimulatedCamera(HealthMixin):
    def __init__(self, name: str = "camera"):
        self.name = name
        self.present = True              # the panel can take the face away

    def wake(self) -> None:
        pass                             # always ready

    async def snapshot(self, decided: asyncio.Event | None = None) -> FaceSnapshot:
        if not self.present:
            return FaceSnapshot(None, False, "no_face")
        img = Image.new("RGB", (160, 200), (70, 80, 90))
        d = ImageDraw.Draw(img)
        d.ellipse((40, 30, 120, 130), fill=(225, 190, 160))
        d.rectangle((30, 140, 130, 200), fill=(40, 60, 120))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        return FaceSnapshot(buf.getvalue(), True)

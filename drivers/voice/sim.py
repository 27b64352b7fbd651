"""Text-only voice for machines without a speaker: the screen shows what would be said."""
from __future__ import annotations

from drivers.health import HealthMixin


class TextVoice(HealthMixin):
    def __init__(self, name: str = "voice"):
        self.name = name
        self.spoken: list[str] = []

    async def say(self, text: str, lang: str = "zh-CN", urgent: bool = False) -> None:
        self.spoken.append(text)

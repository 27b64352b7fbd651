"""Text-only voice for machines without a speaker: the screen shows what would be said (the agent's
prompts), so nothing is kept here; a list of every prompt grew for the life of the process."""
from __future__ import annotations

from drivers.health import HealthMixin


class TextVoice(HealthMixin):
    def __init__(self, name: str = "voice"):
        self.name = name

    async def say(self, text: str, lang: str = "zh-CN", urgent: bool = False) -> None:
        return None

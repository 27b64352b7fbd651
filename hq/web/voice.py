"""Alarms spoken in Mandarin: espeak-ng renders the catalog sentence to a WAV the page plays (an audio
element), so every monitor's browser speaks, not only the machine head office runs on."""
from __future__ import annotations

import asyncio
import shutil
import struct
from collections import OrderedDict

VOICE = "cmn"           # espeak-ng's Mandarin; "zh" is not a voice name there (TESTING.md)
CACHED = 64


class Voice:
    def __init__(self, executable: str | None = None):
        self.executable = executable or shutil.which("espeak-ng")
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = asyncio.Lock()

    @property
    def available(self) -> bool:
        return self.executable is not None

    async def wav(self, sentence: str) -> bytes:
        """The sentence as a WAV file (bytes); the last CACHED sentences are kept."""
        if sentence in self._cache:
            self._cache.move_to_end(sentence)
            return self._cache[sentence]
        if not self.available:
            raise RuntimeError("espeak-ng is not installed")
        async with self._lock:      # one render at a time: a burst of alarms must not fork a crowd
            proc = await asyncio.create_subprocess_exec(
                self.executable, "-v", VOICE, "--stdout", sentence,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
        if proc.returncode != 0 or not out.startswith(b"RIFF"):
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace')[:200]}")
        out = _sized(out)
        self._cache[sentence] = out
        while len(self._cache) > CACHED:
            self._cache.popitem(last=False)
        return out


def _sized(wav: bytes) -> bytes:
    """espeak-ng writing to a pipe cannot seek back, so its RIFF and data sizes are placeholders
    (0x7ffff000); a browser then waits for audio that never comes. Write the real sizes."""
    at = wav.find(b"data", 12)
    if at < 0:
        raise RuntimeError("espeak-ng wrote no WAV data chunk")
    return (b"RIFF" + struct.pack("<I", len(wav) - 8) + wav[8:at + 4]
            + struct.pack("<I", len(wav) - at - 8) + wav[at + 8:])

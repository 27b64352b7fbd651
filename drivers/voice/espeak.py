"""Mandarin prompts through pyttsx3 and espeak-ng, played by an external player (aplay).

say() only queues: a worker thread renders each prompt to a WAV and plays it, so the event
loop never waits on speech. Alarms jump ahead of ordinary prompts; a prompt already waiting in
the queue is not queued twice (a guard pressing again must not make the speaker repeat itself).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pyttsx3

from drivers.health import HealthMixin

log = logging.getLogger(__name__)

# espeak-ng holds one global synthesiser per process. pyttsx3 only keeps a weak reference to its
# engine, and a collected engine unhooks espeak's callback from under its successor: keep one alive.
_ENGINE_LOCK = threading.Lock()
_ENGINE = None
ESPEAK_DEFAULT_RATE = 175     # words per minute; set on every render because the engine is shared


class VoiceConfigError(ValueError):
    pass


def _engine():
    """The process's one engine; call with _ENGINE_LOCK held."""
    global _ENGINE
    if _ENGINE is None:
        engine = pyttsx3.init("espeak")
        # pyttsx3's first loop ends as soon as its queue drains, before espeak-ng has finished
        # (it synthesises on its own thread); run that first loop empty so that every render's
        # loop lasts until its WAV is written
        engine.runAndWait()
        _ENGINE = engine
    return _ENGINE


def resolve_voice(engine, wanted: str) -> str:
    """espeak-ng ids carry a family prefix ('sit/cmn'); accept the bare language code too."""
    ids = [v.id for v in engine.getProperty("voices")]
    for voice_id in ids:
        if voice_id == wanted or voice_id.rsplit("/", 1)[-1] == wanted:
            return voice_id
    raise VoiceConfigError(f"espeak-ng has no voice {wanted!r} (is espeak-ng-data installed?)")


@dataclass
class _Prompt:
    text: str
    voice: str
    urgent: bool


class EspeakVoice(HealthMixin):
    def __init__(self, voice: str = "cmn", rate: int | None = None,
                 player: tuple[str, ...] = ("aplay", "-q"), name: str = "voice",
                 english_voice: str = "en"):
        self.name = name
        self.rate = rate
        self.player = tuple(player)
        with _ENGINE_LOCK:
            engine = _engine()
            self.voice_id = resolve_voice(engine, voice)          # bad configuration fails at start-up
            self.english_voice_id = resolve_voice(engine, english_voice)
        if shutil.which(self.player[0]) is None:
            self._set_health("degraded", f"player {self.player[0]!r} not found: prompts are shown, not spoken")
        self._queue: deque[_Prompt] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._workdir = tempfile.TemporaryDirectory(prefix="voice-")
        self._worker = threading.Thread(target=self._work, name=f"{name}-speaker", daemon=True)
        self._worker.start()

    # --- the Voice interface ---
    async def say(self, text: str, lang: str = "zh-CN", urgent: bool = False) -> None:
        if not text.strip():
            return
        voice = self.english_voice_id if lang.lower().startswith("en") else self.voice_id
        with self._wake:
            waiting = next((p for p in self._queue if p.text == text and p.voice == voice), None)
            if waiting is not None:
                if not urgent or waiting.urgent:
                    return
                self._queue.remove(waiting)                   # now an alarm: move it forward
            prompt = _Prompt(text, voice, urgent)
            if urgent:
                # behind earlier alarms, ahead of every ordinary prompt
                position = sum(1 for p in self._queue if p.urgent)
                self._queue.insert(position, prompt)
            else:
                self._queue.append(prompt)
            self._wake.notify()

    async def close(self) -> None:
        with self._wake:
            self._closed = True
            self._queue.clear()
            self._wake.notify()
        self._worker.join(timeout=10)
        self._workdir.cleanup()

    # --- rendering ---
    def render(self, text: str, path: str | Path, voice: str | None = None) -> str:
        """Render `text` to a WAV file; returns the espeak-ng voice id actually used."""
        wanted = voice or self.voice_id
        if not text.strip():
            raise ValueError("nothing to render: the prompt text is empty")  # pyttsx3 would wait forever
        with _ENGINE_LOCK:
            engine = _engine()
            # pyttsx3 queues property changes until runAndWait(), and an unknown voice is silently
            # ignored: the voice is only known after rendering, so check it then
            engine.setProperty("voice", wanted)
            engine.setProperty("rate", self.rate or ESPEAK_DEFAULT_RATE)
            engine.save_to_file(text, str(path))
            # pyttsx3 prints "Audio saved to ..." on stdout, which belongs to the daemon's own output
            with contextlib.redirect_stdout(io.StringIO()):
                engine.runAndWait()
            used = engine.getProperty("voice")
        if used != wanted:
            Path(path).unlink(missing_ok=True)
            raise VoiceConfigError(f"espeak-ng rendered with voice {used!r} instead of {wanted!r}")
        return used

    # --- the speaker thread ---
    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                prompt = self._queue.popleft()
            self._speak(prompt)

    def _speak(self, prompt: _Prompt) -> None:
        # named by content, so a player log (or a person debugging) can tell prompts apart
        wav = Path(self._workdir.name) / f"prompt-{hashlib.sha256(prompt.text.encode()).hexdigest()[:16]}.wav"
        try:
            self.render(prompt.text, wav, prompt.voice)
            done = subprocess.run([*self.player, str(wav)], capture_output=True, timeout=60)
            if done.returncode != 0:
                error = done.stderr.decode(errors="replace").strip()[-200:] or f"exit {done.returncode}"
                self._set_health("degraded", f"{self.player[0]} failed: {error}")
            else:
                self._set_health("connected")
        except Exception as exc:                              # speech is best effort; the screen shows the text
            self._set_health("degraded", f"{type(exc).__name__}: {exc}")
            log.warning("%s: prompt not played: %s", self.name, type(exc).__name__)
        finally:
            wav.unlink(missing_ok=True)

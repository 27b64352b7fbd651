"""Head office's Mandarin alarm voice (issue 16): the catalog sentence rendered by the real espeak-ng as a WAV
a browser can play — real sizes in its header (espeak-ng writing to a pipe leaves placeholders), Mandarin
voice, audible."""
from __future__ import annotations

import asyncio
import struct
import subprocess
import wave

import numpy as np

from hq.web.board import speech_of
from hq.web.voice import Voice


def test_an_alarm_is_spoken_as_an_audible_wav_with_true_sizes(tmp_path):
    sentence = speech_of({"alarm": "wrong_box", "site_id": "BR-001"}, "dev-1", "2026-11-30T02:05:00.000Z",
                         {"BR-001": "城东支行"})
    assert sentence.startswith("城东支行，错箱报警，")
    wav = asyncio.run(Voice().wav(sentence))
    assert wav[:4] == b"RIFF" and struct.unpack("<I", wav[4:8])[0] == len(wav) - 8
    at = wav.find(b"data")
    assert struct.unpack("<I", wav[at + 4:at + 8])[0] == len(wav) - at - 8
    path = tmp_path / "alarm.wav"
    path.write_bytes(wav)
    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    assert 1.0 < seconds < 15.0
    assert float(np.sqrt(np.mean(samples ** 2))) / 32768 > 0.01, "silent"
    stat = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, timeout=30)
    assert "Length (seconds)" in stat.stderr


def test_the_mandarin_voice_is_not_the_english_one():
    """espeak-ng falls back to English for an unknown voice name without failing: the cmn voice must differ."""
    v = Voice()
    zh = asyncio.run(v.wav("城东支行，错箱报警"))
    en = subprocess.run(["espeak-ng", "-v", "en", "--stdout", "城东支行，错箱报警"], capture_output=True,
                        timeout=30).stdout
    assert zh[44:] != en[44:]

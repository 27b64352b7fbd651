"""Mandarin prompts through the real pyttsx3 + espeak-ng, played by a recording player process."""
import asyncio
import hashlib
import wave

import numpy as np
import pytest

from drivers.voice.espeak import EspeakVoice, VoiceConfigError

SENTENCE = "押运车已到达，请押运员验证指纹"


def rms(path) -> float:
    with wave.open(str(path)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples ** 2))) / 32768


def wav_name(text: str) -> str:
    return f"prompt-{hashlib.sha256(text.encode()).hexdigest()[:16]}.wav"


@pytest.fixture
def recording_player(tmp_path):
    """A player that logs which prompt it was given and holds while the HOLD file exists."""
    log, hold = tmp_path / "played.log", tmp_path / "HOLD"
    script = tmp_path / "player.sh"
    script.write_text(f'basename "$1" >> {log}\nwhile [ -e {hold} ]; do sleep 0.01; done\n')
    return ("sh", str(script)), log, hold


async def wait_lines(log, n, timeout=10.0):
    for _ in range(int(timeout / 0.01)):
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return log.read_text().splitlines()
        await asyncio.sleep(0.01)
    raise AssertionError(f"player got {log.read_text().splitlines() if log.exists() else []}, wanted {n}")


def test_mandarin_sentence_renders_audible_speech_in_the_cmn_voice(tmp_path, capfd):
    voice = EspeakVoice(player=("true",))
    wav = tmp_path / "arrival.wav"
    used = voice.render(SENTENCE, wav)
    assert used == "sit/cmn"
    assert rms(wav) > 0.02
    with wave.open(str(wav)) as w:
        assert w.getnframes() / w.getframerate() > 1.5         # a whole sentence, not a click
    assert capfd.readouterr().out == ""                         # pyttsx3's "Audio saved to" kept off stdout


def test_unknown_voice_is_a_clear_configuration_error():
    with pytest.raises(VoiceConfigError, match="klingon"):
        EspeakVoice(voice="klingon")


async def test_alarm_jumps_the_queue_and_repeated_prompts_are_not_stacked(recording_player):
    player, log, hold = recording_player
    voice = EspeakVoice(player=player)
    hold.touch()
    await voice.say("请押运员验证指纹")
    await wait_lines(log, 1)                   # the first prompt is playing, the rest must wait
    await voice.say("款箱交接开始")
    await voice.say("请营业专员确认")
    await voice.say("款箱交接开始")             # already waiting: not stacked
    await voice.say("非法认证报警", urgent=True)
    hold.unlink()
    played = await wait_lines(log, 4)
    await asyncio.sleep(0.3)                   # nothing else trickles in
    await voice.close()
    assert log.read_text().splitlines() == played == [
        wav_name(t) for t in ["请押运员验证指纹", "非法认证报警", "款箱交接开始", "请营业专员确认"]]
    assert voice.health().state == "connected"


async def test_failing_player_degrades_health_and_say_never_raises(tmp_path):
    voice = EspeakVoice(player=("sh", "-c", "echo 'no soundcard' >&2; exit 1", "player"))
    await voice.say("押运车已到达")
    for _ in range(500):
        if voice.health().state == "degraded":
            break
        await asyncio.sleep(0.01)
    await voice.close()
    assert voice.health().state == "degraded"
    assert "no soundcard" in voice.health().last_error


async def test_missing_player_program_is_degraded_from_the_start():
    voice = EspeakVoice(player=("no-such-player-program",))
    assert voice.health().state == "degraded"
    await voice.say("测试")                     # still fine to call
    await voice.close()


def test_empty_prompt_is_refused_by_render_and_ignored_by_say(tmp_path):
    voice = EspeakVoice(player=("true",))
    with pytest.raises(ValueError, match="empty"):
        voice.render("  ", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    asyncio.run(voice.say(""))
    asyncio.run(voice.close())

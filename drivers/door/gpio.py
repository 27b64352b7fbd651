"""Door-permission output on a GPIO pin (relay driver or lamp) through gpiozero.

The output starts lowered and is lowered again on stop: a restart of the daemon must never
leave the interlock door permitted.
"""
from __future__ import annotations

from gpiozero import OutputDevice

from drivers.health import HealthMixin


class GpioDoor(HealthMixin):
    def __init__(self, pin: int | str, active_high: bool = True, pin_factory=None, name: str = "door"):
        self.name = name
        self.pin = pin
        self.active_high = active_high
        self._factory = pin_factory
        self._device: OutputDevice | None = None
        self._open()

    def _open(self) -> bool:
        try:
            self._device = OutputDevice(self.pin, active_high=self.active_high, initial_value=False,
                                        pin_factory=self._factory)
        except Exception as exc:                 # no GPIO chip, pin busy, no permission
            self._device = None
            self._set_health("missing", f"GPIO {self.pin}: {type(exc).__name__}: {exc}")
            return False
        self._set_health("connected")
        return True

    async def set_permit(self, raised: bool) -> None:
        if self._device is None and not self._open():
            return
        try:
            self._device.value = raised
        except Exception as exc:
            self._set_health("missing", f"GPIO {self.pin}: {type(exc).__name__}: {exc}")
            self._device = None

    @property
    def raised(self) -> bool:
        return bool(self._device is not None and self._device.value)

    async def stop(self) -> None:
        if self._device is not None:
            self._device.off()
            self._device.close()
            self._device = None

"""Health bookkeeping shared by drivers: connected / degraded / missing with the last error."""
from __future__ import annotations

from drivers.events import DeviceEvent, DeviceHealth, HealthState


class HealthMixin:
    name: str
    _state: HealthState = "connected"
    _last_error: str | None = None

    def _set_health(self, state: HealthState, error: str | None = None) -> None:
        self._state = state
        if error is not None:
            self._last_error = error

    def health(self) -> DeviceHealth:
        return DeviceHealth(self.name, self._state, self._last_error)


class SimulatedInput(HealthMixin):
    """What every simulated input device shares: it emits whatever the simulator panel plays while started."""
    name: str
    _emit = None

    async def start(self, emit) -> None:
        self._emit = emit

    async def stop(self) -> None:
        self._emit = None

    def _send(self, event: DeviceEvent) -> None:
        if self._emit:
            self._emit(event)

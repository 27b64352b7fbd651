"""Health bookkeeping shared by drivers: connected / degraded / missing with the last error."""
from __future__ import annotations

from drivers.events import DeviceHealth, HealthState


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

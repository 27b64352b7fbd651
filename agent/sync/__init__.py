"""Head-office sync over MQTT v5 (SPEC §4; the contract is docs/mqtt.md)."""
from agent.sync.client import Sync

__all__ = ["Sync"]

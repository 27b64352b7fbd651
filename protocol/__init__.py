"""What terminal and head office must agree on: bundle format and keys, the journal entry hash chain,
the MQTT topics and message schemas. Imports neither side (agent/, drivers/, offline/, hq/)."""

"""Head office (SPEC §2.5): `handover-hq` — keys, certificates, bundles, publish/watch/export, and
`serve`, the fleet's journals in SQLite or PostgreSQL. Installs without any device driver package."""

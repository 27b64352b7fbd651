"""The monitoring centre's web page (SPEC §2.5), served by `handover-hq serve --http HOST:PORT`."""

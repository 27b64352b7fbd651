"""`handover-agent`: run the daemon, check the journal, make a backup, import from USB."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from agent.config import ConfigError, check_files, load_config

log = logging.getLogger("handover")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handover-agent", description="Cash-in-transit handover terminal agent")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon (simulation when no configuration file exists)")
    run.add_argument("--config", help="TOML configuration file (default: none, simulation)")
    run.add_argument("--simulate", action="store_true", help="simulate every device even if configured")
    run.add_argument("--state-dir", help="override paths.state_dir (a demo's scratch directory)")
    run.add_argument("--port", type=int, help="override screen.port")

    journal = sub.add_parser("journal", help="journal tools").add_subparsers(dest="journal_command", required=True)
    verify = journal.add_parser("verify", help="check the hash chain and name the first bad entry")
    verify.add_argument("--db", help="journal file (default: from --config)")
    verify.add_argument("--config")

    backup = sub.add_parser("backup", help="make a verified, rotated copy of the journal")
    backup.add_argument("--config")

    sub.add_parser("usb-import", add_help=False,
                   help="read a USB stick (run by udev): bundles to the inbox, identity for provisioning")

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["usb-import"]:
        from offline.usb import usb_import_main
        return usb_import_main(argv[1:])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "journal":
            return _journal_verify(args)
        if args.command == "backup":
            from agent.backup import run_backup
            from agent.journal import JournalError
            try:
                print(run_backup(load_config(args.config)))
            except JournalError as e:
                print(f"backup: {e}", file=sys.stderr)
                return 2
            return 0
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    return 1


def _journal_verify(args) -> int:
    from agent.journal import JournalError, verify_file
    path = args.db or load_config(args.config).paths.journal_path
    try:
        result = verify_file(path)
    except JournalError as e:
        print(f"journal verify: {e}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"journal OK: {result.checked} entries, chain intact")
        return 0
    print(f"journal BROKEN at entry {result.first_bad_seq}: {result.reason}", file=sys.stderr)
    return 1


def _run(args) -> int:
    import dataclasses
    from pathlib import Path
    config = load_config(args.config)
    if args.simulate:
        config = config.as_simulation()
    if args.state_dir:
        config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=Path(args.state_dir)))
    if args.port:
        config = dataclasses.replace(config, screen=dataclasses.replace(config.screen, port=args.port))
    # A message naming the key, not a traceback later. Certificates may still be on their way (an
    # unprovisioned box must run to import its provisioning bundle): the agent says so and runs offline.
    # A bad complaint key must not stop handovers either: complaints stay on the box and health says why.
    problems = [p for p in check_files(config) if not p.startswith(("mqtt.", "complaints.hq_key"))]
    for problem in problems:
        print(f"configuration error: {problem}", file=sys.stderr)
    if problems:
        return 1
    asyncio.run(_serve(config))
    return 0


async def _serve(config) -> None:
    from aiohttp import web

    from agent.devices import build_devices
    from agent.screen.server import build_app
    from agent.sdnotify import Notifier, watchdog_loop
    from agent.terminal import Terminal

    terminal = Terminal(config, build_devices(config))
    await terminal.start()
    runner = web.AppRunner(build_app(terminal), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.screen.host, config.screen.port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):     # before saying it is up: a stop right after is clean too
        loop.add_signal_handler(sig, stop.set)
    mode = "simulation" if config.simulate else "devices"
    print(f"handover-agent ({mode}) site {config.site.id}: screen at {config.screen.url}", flush=True)

    notifier = Notifier()
    notifier.ready()
    watchdog = asyncio.create_task(watchdog_loop(notifier))
    await stop.wait()
    notifier.stopping()
    log.info("stopping: finishing queued device events and journal writes")
    watchdog.cancel()
    await runner.cleanup()
    await terminal.stop()
    notifier.close()


if __name__ == "__main__":
    sys.exit(main())

"""`village-agent`: run the daemon, measure once, check a config, and the technician's tools.

Each command's module is imported when that command runs, and for `run` only after
`agent.lowmem.defer()`: the daemon must not carry the diagnostics' imports for the rest of its life,
and its stand-ins must be in place before structlog or paho-mqtt is imported. So nothing here
imports more than the configuration code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agent import __version__
from agent.cli.exits import EX_CONFIG, EX_OK
from agent.config.load import ConfigError, load_config
from agent.config.schema import Config

DEFAULT_CONFIG = Path("/etc/village-agent/agent.yaml")


def load(path: Path) -> Config:
    """The config at `path`, or exit 78 with every problem printed."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        raise SystemExit(EX_CONFIG) from err


def _with_config(
    command: Callable[[argparse.Namespace, Config], int],
) -> Callable[[argparse.Namespace], int]:
    return lambda args: command(args, load(Path(args.config)))


def cmd_run(args: argparse.Namespace) -> int:
    from agent import lowmem

    # Before anything imports structlog or paho-mqtt: see agent/lowmem.py.
    lowmem.defer()
    from agent.cli.run import cmd_run as run

    return run(args, load)


def cmd_once(args: argparse.Namespace, config: Config) -> int:
    from agent.cli.once import cmd_once as once

    return once(args, config)


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load(Path(args.file))
    print(f"{args.file}: OK (site {config.site_id}, broker {config.broker.url})")
    return EX_OK


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"village-agent {__version__}")
    return EX_OK


def cmd_diag(args: argparse.Namespace) -> int:
    from agent.diag import run_diag
    from agent.diag.messages import choose_lang

    return run_diag(
        Path(args.config),
        lang=choose_lang(args.lang),
        json_out=args.json,
        out=sys.stdout,
        tty=sys.stdout.isatty(),
    )


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    from agent.cli.status import run_status

    return run_status(config, as_json=args.json)


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from agent.cli.buffer import cmd_export as export

    return export(args, config)


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from agent.cli.buffer import cmd_import as import_

    return import_(args, config)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="village-agent",
        description="Measures a village site's link, buffers readings on disk, publishes over MQTT.",
    )
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default=str(DEFAULT_CONFIG), help="config file (YAML)")
    run.set_defaults(func=cmd_run)
    once = sub.add_parser("once", help="measure one round and print it; nothing is stored or sent")
    once.add_argument("--config", default=str(DEFAULT_CONFIG))
    once.add_argument("--json", action="store_true", help="one JSON object per reading per line")
    once.add_argument(
        "--speedtest",
        action="store_true",
        help="also run the speed test now (whatever the schedule, never beyond the data budget)",
    )
    once.set_defaults(func=_with_config(cmd_once))
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    diag = sub.add_parser("diag", help="technician's checklist: what is wrong at this site")
    diag.add_argument("--config", default=str(DEFAULT_CONFIG))
    diag.add_argument("--lang", choices=("id", "en"), help="default: from LANG (id* = Indonesian)")
    diag.add_argument(
        "--json", action="store_true", help='{"checks": [{name, status, detail, advice}]}'
    )
    diag.set_defaults(func=cmd_diag)
    status = sub.add_parser("status", help="what the running daemon is doing")
    status.add_argument("--config", default=str(DEFAULT_CONFIG))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_with_config(cmd_status))
    buffer = sub.add_parser("buffer", help="carry unsent readings on a USB stick")
    buffer_sub = buffer.add_subparsers(dest="buffer_command", required=True)
    export = buffer_sub.add_parser(
        "export", help="copy the unsent readings into one .jsonl.gz file"
    )
    export.add_argument(
        "--out", required=True, help="the file to write, e.g. /media/usb/site.jsonl.gz"
    )
    export.add_argument("--config", default=str(DEFAULT_CONFIG))
    export.set_defaults(func=_with_config(cmd_export))
    imp = buffer_sub.add_parser("import", help="publish an export to the broker (resumable)")
    imp.add_argument("file")
    imp.add_argument("--config", default=str(DEFAULT_CONFIG))
    imp.add_argument("--progress", help="progress file (default: FILE.progress next to FILE)")
    imp.add_argument(
        "--timeout-s", type=float, default=120.0, help="give up after this long without an ack"
    )
    imp.set_defaults(func=_with_config(cmd_import))
    return top


# A command run by hand as root would otherwise leave the buffer, exports and progress files
# readable by every user (umask 022). Only ever tightened: the unit's UMask=0077 stays as it is.
UMASK_AT_LEAST = 0o027


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(os.umask(UMASK_AT_LEAST) | UMASK_AT_LEAST)
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

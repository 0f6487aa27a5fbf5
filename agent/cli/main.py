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
from agent.cli.exits import EX_CONFIG, EX_OK, EX_PIPE
from agent.cli.messages import Lang, choose_lang, text
from agent.config.load import ConfigError, load_config
from agent.config.schema import Config

DEFAULT_CONFIG = Path("/etc/village-agent/agent.yaml")


def load(path: Path, lang: Lang = "en") -> Config:
    """The config at `path`, or exit 78 with every problem printed in `lang`."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(err.render(lang), file=sys.stderr)
        raise SystemExit(EX_CONFIG) from err


def _with_config(
    command: Callable[[argparse.Namespace, Config], int],
) -> Callable[[argparse.Namespace], int]:
    return lambda args: command(args, load(Path(args.config), choose_lang(args.lang)))


def cmd_run(args: argparse.Namespace) -> int:
    from agent import lowmem

    # Before anything imports structlog or paho-mqtt: see agent/lowmem.py.
    lowmem.defer()
    from agent.cli.run import cmd_run as run

    return run(args, lambda path: load(path, choose_lang(args.lang)))


def cmd_once(args: argparse.Namespace, config: Config) -> int:
    from agent.cli.once import cmd_once as once

    return once(args, config)


def cmd_config_check(args: argparse.Namespace) -> int:
    lang = choose_lang(args.lang)
    config = load(Path(args.file), lang)
    print(text("config.ok", lang, file=args.file, site=config.site_id, broker=config.broker.url))
    return EX_OK


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"village-agent {__version__}")
    return EX_OK


def cmd_diag(args: argparse.Namespace) -> int:
    from agent.diag import run_diag

    return run_diag(
        Path(args.config),
        lang=choose_lang(args.lang),
        json_out=args.json,
        out=sys.stdout,
        tty=sys.stdout.isatty(),
    )


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    if args.history:
        from agent.cli.history import run_history

        return run_history(config, as_json=args.json, lang=choose_lang(args.lang))
    from agent.cli.status import run_status

    return run_status(config, as_json=args.json, lang=choose_lang(args.lang))


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from agent.cli.buffer import cmd_export as export

    return export(args, config)


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from agent.cli.buffer import cmd_import as import_

    return import_(args, config)


def _lang_in(argv: Sequence[str]) -> str | None:
    """The `--lang` on the command line, read before parsing: `--help` is already in it."""
    for index, arg in enumerate(argv):
        if arg == "--lang" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def parser(lang: Lang = "en") -> argparse.ArgumentParser:
    def say(key: str) -> str:
        return text(key, lang)

    def common(command: argparse.ArgumentParser, *, config: bool = True) -> None:
        if config:
            command.add_argument("--config", default=str(DEFAULT_CONFIG), help=say("help.config"))
        command.add_argument("--lang", choices=("id", "en"), help=say("help.lang"))

    top = argparse.ArgumentParser(prog="village-agent", description=say("help.description"))
    top.add_argument(
        "--version",
        action="version",
        version=f"village-agent {__version__}",
        help=say("help.version"),
    )
    # Also before the command (`village-agent --lang id --help`); the command's own --lang wins.
    top.add_argument("--lang", dest="top_lang", choices=("id", "en"), help=say("help.lang"))
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help=say("help.run"))
    common(run)
    run.set_defaults(func=cmd_run)
    once = sub.add_parser("once", help=say("help.once"))
    common(once)
    once.add_argument("--json", action="store_true", help=say("help.once.json"))
    once.add_argument("--speedtest", action="store_true", help=say("help.once.speedtest"))
    once.add_argument("--publish", action="store_true", help=say("help.once.publish"))
    once.add_argument("--timeout-s", type=float, default=30.0, help=say("help.once.timeout"))
    once.set_defaults(func=_with_config(cmd_once))
    config = sub.add_parser("config", help=say("help.config_tools"))
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help=say("help.config.check"))
    check.add_argument("file")
    common(check, config=False)
    check.set_defaults(func=cmd_config_check)
    version = sub.add_parser("version", help=say("help.version_cmd"))
    version.set_defaults(func=cmd_version)
    diag = sub.add_parser("diag", help=say("help.diag"))
    common(diag)
    diag.add_argument("--json", action="store_true", help=say("help.diag.json"))
    diag.set_defaults(func=cmd_diag)
    status = sub.add_parser("status", help=say("help.status"))
    common(status)
    status.add_argument("--json", action="store_true", help=say("help.status.json"))
    status.add_argument("--history", action="store_true", help=say("help.status.history"))
    status.set_defaults(func=_with_config(cmd_status))
    buffer = sub.add_parser("buffer", help=say("help.buffer"))
    buffer_sub = buffer.add_subparsers(dest="buffer_command", required=True)
    export = buffer_sub.add_parser("export", help=say("help.export"))
    export.add_argument("--out", required=True, help=say("help.export.out"))
    common(export)
    export.set_defaults(func=_with_config(cmd_export))
    imp = buffer_sub.add_parser("import", help=say("help.import"))
    imp.add_argument("file")
    common(imp)
    imp.add_argument("--progress", help=say("help.import.progress"))
    imp.add_argument("--timeout-s", type=float, default=120.0, help=say("help.import.timeout"))
    imp.set_defaults(func=_with_config(cmd_import))
    return top


# A command run by hand as root would otherwise leave the buffer, exports and progress files
# readable by every user (umask 022). Only ever tightened: the unit's UMask=0077 stays as it is.
UMASK_AT_LEAST = 0o027


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(os.umask(UMASK_AT_LEAST) | UMASK_AT_LEAST)
    given = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            args = parser(choose_lang(_lang_in(given))).parse_args(given)
            if getattr(args, "lang", None) is None:
                args.lang = args.top_lang
            code: int = args.func(args)
        finally:
            # Here, not at the interpreter's exit, so a closed pipe is caught below (also after
            # --help, which leaves through SystemExit).
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`diag | head`): not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EX_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The technician's subcommands: `diag`, `status`, `buffer export`, `buffer import`.

Exit statuses (sysexits.h where one fits):
  diag           0 nothing failed (warnings allowed), 1 a check failed, 78 config invalid
  status         0 the daemon runs, 3 it does not (LSB "not running"), 78 config invalid
  buffer export  0 written, 66 no buffer in state_dir, 74 buffer unreadable, 73 cannot write FILE
  buffer import  0 all delivered, 65 not a valid export, 69 broker unreachable/no progress,
                 77 broker refused the login or a message, 130 interrupted (run again to resume)
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from agent.config import Config

# The commands' own modules are imported when a command runs: `village-agent run` parses the same
# command line, and the daemon should not carry the diagnostics' imports (ssl contexts, DNS, MQTT
# login code) in its memory for the rest of its life.

EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE = 65, 66, 69
EX_CANTCREAT, EX_IOERR, EX_NOPERM = 73, 74, 77
EX_INTERRUPTED = 130

Load = Callable[[Path], Config]


def _diag(args: argparse.Namespace, _load: Load) -> int:
    from agent.diag import run_diag
    from agent.diag.messages import choose_lang

    return run_diag(
        Path(args.config),
        lang=choose_lang(args.lang),
        json_out=args.json,
        out=sys.stdout,
        tty=sys.stdout.isatty(),
    )


def _status(args: argparse.Namespace, load: Load) -> int:
    from agent.statuscmd import run_status

    return run_status(load(Path(args.config)), as_json=args.json)


def _export(args: argparse.Namespace, load: Load) -> int:
    from agent.buffer import BufferError
    from agent.bufferview import NoBuffer
    from agent.clock import SystemClock
    from agent.transfer import TransferError, export_buffer

    config = load(Path(args.config))
    clock = SystemClock()
    out = Path(args.out)
    try:
        done = export_buffer(config.state_dir, out, now=clock.wall(), clock_synced=clock.synced())
    except NoBuffer as err:
        print(f"export: {err}: nothing to export", file=sys.stderr)
        return EX_NOINPUT
    except (BufferError, TransferError) as err:
        print(f"export: {err}", file=sys.stderr)
        return EX_IOERR
    except OSError as err:
        print(f"export: cannot write {out}: {err.strerror}", file=sys.stderr)
        return EX_CANTCREAT
    seqs = f"seq {done.first_seq}..{done.last_seq}" if done.count else "nothing unsent"
    print(f"exported {done.count} unsent readings of site {done.site} ({seqs}) to {done.path}")
    print(f"import elsewhere with: village-agent buffer import {done.path.name} --config FILE")
    return 0


def _import(args: argparse.Namespace, load: Load) -> int:
    from agent.transfer import BadExport, BrokerRefused, NoProgress, import_export

    config = load(Path(args.config))
    stop = {"now": False}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        done = import_export(
            Path(args.file),
            config,
            progress_file=Path(args.progress) if args.progress else None,
            stall_timeout_s=args.timeout_s,
            should_stop=lambda: stop["now"],
        )
    except BadExport as err:
        print(f"import: {err}", file=sys.stderr)
        return EX_DATAERR
    except BrokerRefused as err:
        print(
            f"import: {err}; acknowledged batches are recorded, run again once fixed",
            file=sys.stderr,
        )
        return EX_NOPERM
    except NoProgress as err:
        print(f"import: {err}; run the same command again to resume", file=sys.stderr)
        return EX_UNAVAILABLE
    except OSError as err:
        print(f"import: {err}", file=sys.stderr)
        return EX_DATAERR
    delivered = done.sent_now + done.already
    print(
        f"site {done.site}: {delivered}/{done.total} readings acknowledged by the broker"
        f" ({done.sent_now} now in {done.messages} messages, {done.already} in earlier runs)"
        f" in {done.seconds:.1f} s"
    )
    if not done.complete:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EX_INTERRUPTED
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], load: Load, default_config: Path
) -> None:
    """Register the technician's subcommands; `load` reads the config or exits 78."""

    def bind(
        handler: Callable[[argparse.Namespace, Load], int],
    ) -> Callable[[argparse.Namespace], int]:
        return lambda args: handler(args, load)

    diag = sub.add_parser("diag", help="technician's checklist: what is wrong at this site")
    diag.add_argument("--config", default=str(default_config))
    diag.add_argument("--lang", choices=("id", "en"), help="default: from LANG (id* = Indonesian)")
    diag.add_argument(
        "--json", action="store_true", help='{"checks": [{name, status, detail, advice}]}'
    )
    diag.set_defaults(func=bind(_diag))
    status = sub.add_parser("status", help="what the running daemon is doing")
    status.add_argument("--config", default=str(default_config))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=bind(_status))
    buffer = sub.add_parser("buffer", help="carry unsent readings on a USB stick")
    buffer_sub = buffer.add_subparsers(dest="buffer_command", required=True)
    export = buffer_sub.add_parser(
        "export", help="copy the unsent readings into one .jsonl.gz file"
    )
    export.add_argument(
        "--out", required=True, help="the file to write, e.g. /media/usb/site.jsonl.gz"
    )
    export.add_argument("--config", default=str(default_config))
    export.set_defaults(func=bind(_export))
    imp = buffer_sub.add_parser("import", help="publish an export to the broker (resumable)")
    imp.add_argument("file")
    imp.add_argument("--config", default=str(default_config))
    imp.add_argument("--progress", help="progress file (default: FILE.progress next to FILE)")
    imp.add_argument(
        "--timeout-s", type=float, default=120.0, help="give up after this long without an ack"
    )
    imp.set_defaults(func=bind(_import))

"""`village-agent buffer export | import`: unsent readings carried on a USB stick when there is no
backhaul (the file format and the delivery are `agent.cli.transfer`'s)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from agent.buffer.errors import BufferError
from agent.buffer.readonly import NoBuffer
from agent.cli.exits import (
    EX_CANTCREAT,
    EX_CONFIG,
    EX_DATAERR,
    EX_INTERRUPTED,
    EX_IOERR,
    EX_NOINPUT,
    EX_NOPERM,
    EX_OK,
    EX_UNAVAILABLE,
)
from agent.cli.transfer import (
    BadExport,
    BrokerRefused,
    KeyMissing,
    NoProgress,
    TransferError,
    export_buffer,
    import_export,
    read_transfer_key,
)
from agent.clock import SystemClock
from agent.config.schema import Config


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    """Write the unsent readings to --out."""
    clock = SystemClock()
    out = Path(args.out)
    try:
        key = read_transfer_key(config.transfer.key_file)
        done = export_buffer(
            config.state_dir, out, key=key, now=clock.wall(), clock_synced=clock.synced()
        )
    except KeyMissing as err:
        # Not created here: a key made at a site without backhaul is one the office never saw,
        # and its files could not be checked anywhere.
        print(f"export: {err}", file=sys.stderr)
        return EX_CONFIG
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
    return EX_OK


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    """Publish an export file to the broker, resumably."""
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
    except KeyMissing as err:
        print(f"import: {err}", file=sys.stderr)
        return EX_CONFIG
    except BadExport as err:
        print(f"import: {err}; nothing was sent", file=sys.stderr)
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
    return EX_OK

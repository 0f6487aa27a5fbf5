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
from agent.cli.messages import choose_lang, text
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
    lang = choose_lang(args.lang)
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
        print(text("buffer.key_missing", lang, command="export", error=err), file=sys.stderr)
        return EX_CONFIG
    except NoBuffer as err:
        print(text("buffer.nothing_to_export", lang, error=err), file=sys.stderr)
        return EX_NOINPUT
    except (BufferError, TransferError) as err:
        print(text("buffer.export_failed", lang, error=err), file=sys.stderr)
        return EX_IOERR
    except OSError as err:
        print(text("buffer.cannot_write", lang, out=out, error=err.strerror), file=sys.stderr)
        return EX_CANTCREAT
    seqs = (
        text("buffer.seqs", lang, first=done.first_seq, last=done.last_seq)
        if done.count
        else text("buffer.none_unsent", lang)
    )
    print(
        text("buffer.exported", lang, count=done.count, site=done.site, seqs=seqs, path=done.path)
    )
    print(text("buffer.import_hint", lang, name=done.path.name))
    return EX_OK


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    """Publish an export file to the broker, resumably."""
    lang = choose_lang(args.lang)
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
        print(text("buffer.key_missing", lang, command="import", error=err), file=sys.stderr)
        return EX_CONFIG
    except BadExport as err:
        print(text("buffer.bad_export", lang, error=err), file=sys.stderr)
        return EX_DATAERR
    except BrokerRefused as err:
        print(text("buffer.refused", lang, error=err), file=sys.stderr)
        return EX_NOPERM
    except NoProgress as err:
        print(text("buffer.no_progress", lang, error=err), file=sys.stderr)
        return EX_UNAVAILABLE
    except OSError as err:
        print(text("buffer.import_failed", lang, error=err), file=sys.stderr)
        return EX_DATAERR
    delivered = done.sent_now + done.already
    print(
        text(
            "buffer.imported",
            lang,
            site=done.site,
            delivered=delivered,
            total=done.total,
            now=done.sent_now,
            messages=done.messages,
            already=done.already,
            seconds=done.seconds,
        )
    )
    if not done.complete:
        print(text("buffer.interrupted", lang), file=sys.stderr)
        return EX_INTERRUPTED
    return EX_OK

"""`village-collector`: run the collector, serve its HTTP side, check a config, decode a payload."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import BinaryIO, TextIO

from agent import logs
from collector import __version__
from collector.bridge import influx, jsonl
from collector.clock import SystemClock
from collector.config import Config, ConfigError, load_config
from collector.decode import Batch, PayloadError, decode_telemetry
from collector.messages import LANGS, Lang, default_lang, text
from collector.service import Exit, run, serve

DEFAULT_CONFIG = Path("/etc/village-collector/collector.yaml")
FORMATS = {"jsonl": jsonl.lines, "influx": influx.lines}


def _load(args: argparse.Namespace, lang: Lang) -> Config:
    try:
        return load_config(Path(args.config), lang)
    except ConfigError as err:
        raise Exit(status=os.EX_CONFIG, message=err.render(lang)) from err


def _until_signalled() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_run(args: argparse.Namespace, lang: Lang) -> int:
    config = _load(args, lang)
    logs.configure(config.log.level)
    run(config, SystemClock(), _until_signalled(), lang)
    return os.EX_OK


def cmd_serve(args: argparse.Namespace, lang: Lang) -> int:
    config = _load(args, lang)
    logs.configure(config.log.level)
    serve(config, SystemClock(), _until_signalled(), lang)
    return os.EX_OK


def cmd_config_check(args: argparse.Namespace, lang: Lang) -> int:
    config = _load(args, lang)
    print(
        text(
            "config.ok",
            lang,
            file=args.config,
            broker=config.broker.url,
            database=config.database.url,
            listen=config.http.listen,
        )
    )
    return os.EX_OK


def _payloads(stream: BinaryIO, hex_lines: bool, lang: Lang, err: TextIO) -> Iterator[bytes]:
    if not hex_lines:
        yield stream.read()
        return
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            yield bytes.fromhex(line.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            print(text("decode.bad_hex", lang, line=number), file=err)


def cmd_decode(args: argparse.Namespace, lang: Lang) -> int:
    status = os.EX_OK
    out, err = sys.stdout, sys.stderr
    for payload in _payloads(sys.stdin.buffer, args.hex, lang, err):
        if not payload:
            print(text("decode.empty", lang), file=err)
            return os.EX_NOINPUT
        try:
            batch: Batch = decode_telemetry(payload)
        except PayloadError as error:
            print(text("decode.bad", lang, error=error), file=err)
            status = os.EX_DATAERR
            continue
        for line in FORMATS[args.format](batch):
            out.write(line + "\n")
        out.flush()  # a streaming consumer (Telegraf's execd) sees each message as it comes
    return status


def cmd_version(_args: argparse.Namespace, _lang: Lang) -> int:
    print(f"village-collector {__version__}")
    return os.EX_OK


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand not given --lang keeps the one given before it.
    common.add_argument(
        "--lang", choices=LANGS, default=argparse.SUPPRESS, help="id or en (default: from LANG)"
    )
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=str(DEFAULT_CONFIG), help="the collector's YAML")
    top = argparse.ArgumentParser(prog="village-collector", parents=[common])
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "run", parents=[common, config], help="subscribe, store, serve HTTP"
    ).set_defaults(func=cmd_run)
    commands.add_parser(
        "serve", parents=[common, config], help="serve HTTP from the database alone"
    ).set_defaults(func=cmd_serve)
    check = commands.add_parser("config", parents=[common], help="configuration tools")
    check_commands = check.add_subparsers(dest="config_command", required=True)
    check_commands.add_parser(
        "check", parents=[common, config], help="validate a config file"
    ).set_defaults(func=cmd_config_check)
    decode = commands.add_parser(
        "decode", parents=[common], help="one raw MQTT payload on stdin -> readings on stdout"
    )
    decode.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
    decode.add_argument(
        "--hex",
        action="store_true",
        help="a stream: one payload per line, in hex (mosquitto_sub -F %%x)",
    )
    decode.set_defaults(func=cmd_decode)
    commands.add_parser("version", parents=[common]).set_defaults(func=cmd_version)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    lang: Lang = getattr(args, "lang", None) or default_lang()
    try:
        status: int = args.func(args, lang)
    except Exit as stop:
        print(stop.message, file=sys.stderr)
        return stop.status
    return status

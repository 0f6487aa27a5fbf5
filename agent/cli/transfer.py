"""`buffer export` / `buffer import`: unsent readings carried on a USB stick when there is no backhaul.

The export file is gzip-compressed text, one JSON object per line. Line 1 is a header:
  {"format": "village-agent-buffer-export", "version": 2, "site", "epoch", "count", "first_seq",
   "exported_at", "clock_synced", "agent_version"}
Every following line is one telemetry payload of the MQTT contract (uncompressed `encode_telemetry`
JSON, at most 500 readings), so any consumer of the contract can read it with `zcat`. The last line
is the signature, {"hmac_sha256": HEX}: HMAC-SHA256 with the site's transfer key
(`transfer.key_file`) over every byte of the lines before it. Whoever lacks the key can neither
forge nor alter a file, nor pass one site's file off as another's. Export writes
schema 1, which every consumer reads (gzip already takes out what schema 2 would save); import reads
lines of either schema and publishes in the configured `broker.payload_schema`.

Export reads the buffer read-only in one read transaction (a consistent snapshot while the daemon keeps
running) and writes the file atomically. It deletes nothing: when the backhaul returns the daemon may
publish the same readings too, and the collector's dedupe on (site, epoch, seq) absorbs that.

Import first reads the whole file, streamed, within hard limits (line length, decompressed size):
it checks the signature with the configured site's key, the header's site against the config, every
line's site and payload, and the count. Only a file that passes all of it is published; a bad one
is BadExport (exit 65) naming the line and what is wrong.

Import publishes the readings under the file's site and seq epoch (every line must carry the
header's) with their original seq, QoS 1, a batch at a time
within the in-flight window, and records every acknowledged seq range in a progress file after each
PUBACK. An interrupted import resumes from there and re-sends only batches never acknowledged. A
negative PUBACK stops the import with the broker's reason; that batch is not recorded as done.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import hmac
import json
import os
import stat
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent import __version__
from agent.buffer.readonly import BufferView
from agent.buffer.store import Buffer
from agent.config.convert import shown
from agent.config.schema import Config, site_id_problem
from agent.contract.control import encode_import_marker
from agent.contract.telemetry import Batch, PayloadError, decode_telemetry, encode_telemetry
from agent.contract.topics import topic
from agent.files import fsync_dir, replace_json
from agent.publish.link import Acked, Connected, ConnectFailed, Disconnected, MqttLink, Will
from agent.reading import Reading

FORMAT = "village-agent-buffer-export"
VERSION = 2  # 2: signed (HMAC-SHA256 trailer); 1 had no signature and is refused
_LINE_READINGS = 500
_SIGNATURE = b'{"hmac_sha256": "'
# Hard limits on what import reads, whatever the file claims. A line holds at most 500 readings
# (about 150 KB); a whole buffer of 1,000,000 readings exports to about 300 MB of text.
LINE_MAX_BYTES = 4 * 1024 * 1024
EXPORT_MAX_BYTES = 1024 * 1024 * 1024
PROGRESS_MAX_BYTES = 1024 * 1024
_KEY_MAX_BYTES = 4096
_KEY_MIN_BYTES = 16
_SEQ_MAX = 2**63 - 1


class TransferError(Exception):
    """The export or import cannot go on; the message says why and what to do."""


class BadExport(TransferError):
    """The file is not a complete export (truncated, damaged, or another format)."""


class KeyMissing(TransferError):
    """The site's transfer key cannot be read: nothing can be signed or checked."""


class BrokerRefused(TransferError):
    """The broker refused the login or a message: retrying will not help until someone fixes it."""


class NoProgress(TransferError):
    """The broker could not be reached, or stopped acknowledging, for too long."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Exported:
    site: str
    count: int
    first_seq: int | None
    last_seq: int | None
    path: Path


def read_transfer_key(path: Path) -> bytes:
    """The site's transfer key: the file's text without surrounding white space. Raise KeyMissing
    when it is missing, readable by everyone, or too short to be a key."""
    try:
        if path.stat().st_mode & stat.S_IROTH:
            raise KeyMissing(f"{path} is readable by every user; run: chmod 0640 {path}")
        with path.open("rb") as handle:
            key = handle.read(_KEY_MAX_BYTES + 1).strip()
    except OSError as err:
        raise KeyMissing(
            f"cannot read the transfer key {path}: {err.strerror}. install.sh creates it; the"
            " provincial office keeps a copy for each site and can give it back"
        ) from err
    if not _KEY_MIN_BYTES <= len(key) <= _KEY_MAX_BYTES:
        raise KeyMissing(f"{path} is not a transfer key (expected 64 hex digits)")
    return key


def write_signed(out: Path, lines: Iterable[bytes], key: bytes) -> None:
    """Write `lines` (each ending in a newline) gzip-compressed to `out`, then their signature
    line, and fsync: the file leaves on a USB stick and must be whole on the medium."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with out.open("wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
            for line in lines:
                mac.update(line)
                packed.write(line)
            packed.write(_SIGNATURE + mac.hexdigest().encode("ascii") + b'"}\n')
        raw.flush()
        os.fsync(raw.fileno())


def export_buffer(
    state_dir: Path, out: Path, *, key: bytes, now: float, clock_synced: bool
) -> Exported:
    """Copy every unsent reading into `out`, signed with `key`, atomically. Raise BufferError if
    the buffer is unusable."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tally: list[tuple[int, int]] = []  # (readings, last seq) of each line written

    with BufferView.open(state_dir) as view, view.snapshot() as buffer:
        site = view.site() or ""
        stats = buffer.stats()
        header = {
            "format": FORMAT,
            "version": VERSION,
            "site": site,
            "epoch": stats.epoch,
            "count": stats.count,
            "first_seq": stats.oldest_seq,
            "exported_at": now,
            "clock_synced": clock_synced,
            "agent_version": __version__,
        }

        def lines() -> Iterator[bytes]:
            yield json.dumps(header).encode("utf-8") + b"\n"
            for page in _pages(buffer):
                line = encode_telemetry(site, page, epoch=stats.epoch, compress=False, schema=1)
                yield line + b"\n"
                tally.append((len(page), page[-1].seq))

        try:
            write_signed(tmp, lines(), key)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
    written = sum(readings for readings, _last in tally)
    last = tally[-1][1] if tally else None
    if written != stats.count:
        tmp.unlink(missing_ok=True)
        raise TransferError(f"read {written} readings but the buffer counts {stats.count}")
    tmp.replace(out)
    fsync_dir(out.parent)
    return Exported(site=site, count=written, first_seq=stats.oldest_seq, last_seq=last, path=out)


def _pages(buffer: Buffer) -> Iterator[list[Reading]]:
    after = 0
    while page := buffer.oldest(after_seq=after, limit=_LINE_READINGS):
        yield page
        after = page[-1].seq


# -- import ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Imported:
    site: str
    total: int
    sent_now: int  # readings acknowledged in this run
    already: int  # readings acknowledged by an earlier, interrupted run
    messages: int
    seconds: float
    complete: bool


def _bad(path: Path, number: int, what: str) -> BadExport:
    return BadExport(f"{path} line {number}: {what}")


def _lines(path: Path, handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline) of the decompressed file, within the hard limits.
    Raise BadExport for a line or a file over its limit, or a damaged gzip stream."""
    total = 0
    number = 0
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as packed:
            while line := packed.readline(LINE_MAX_BYTES + 1):
                number += 1
                total += len(line)
                if not line.endswith(b"\n"):
                    if len(line) > LINE_MAX_BYTES:
                        raise _bad(path, number, f"longer than {LINE_MAX_BYTES} bytes")
                    raise _bad(path, number, "cut short: the file is damaged or truncated")
                if total > EXPORT_MAX_BYTES:
                    raise _bad(path, number, f"the file unpacks to over {EXPORT_MAX_BYTES} bytes")
                yield number, line[:-1]
    except (OSError, EOFError, zlib.error) as err:
        raise BadExport(f"{path} is damaged or truncated after line {number}: {err}") from err


def _header(path: Path, line: bytes, config: Config) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as err:
        raise _bad(path, 1, f"not a buffer export header ({str(err)[:80]})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _bad(path, 1, "not a village-agent buffer export")
    if header.get("version") != VERSION:
        raise _bad(
            path,
            1,
            f"export version {shown(repr(header.get('version')))}, this reads {VERSION}"
            " (version 1 files are unsigned: export them again)",
        )
    site = header.get("site")
    problem = site_id_problem(site) if isinstance(site, str) else "the site is missing"
    if problem is not None:
        raise _bad(path, 1, problem)
    if site != config.site_id:
        raise _bad(path, 1, f"made for site {site!r}, this config is site {config.site_id!r}")
    count = header.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= _SEQ_MAX:
        raise _bad(path, 1, "the count is not a whole number")
    epoch = header.get("epoch", "")
    if not (isinstance(epoch, str) and len(epoch) <= 64):
        raise _bad(path, 1, "the epoch is not a short text")
    return header


def export_epoch(header: dict[str, Any]) -> str:
    """The seq epoch of a checked header's readings; "" for a file whose readings carry none."""
    return str(header.get("epoch", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """An export whose signature, site and every line were checked."""

    header: dict[str, Any]
    signature: str  # the file's HMAC: names it in the progress file


def _payloads(path: Path, handle: IO[bytes], config: Config) -> Iterator[tuple[int, bytes]]:
    """Header checked, then (number, payload line) up to the signature line, which must be last."""
    lines = _lines(path, handle)
    first = next(lines, None)
    if first is None:
        raise BadExport(f"{path} is empty")
    _header(path, first[1], config)
    for number, line in lines:
        if line.startswith(_SIGNATURE):
            if next(lines, None) is not None:
                raise _bad(path, number + 1, "lines after the signature")
            return
        yield number, line
    raise BadExport(f"{path} has no signature line: truncated, or not made by `buffer export`")


def _decode(path: Path, number: int, line: bytes, config: Config, epoch: str) -> Batch:
    try:
        batch = decode_telemetry(line)
    except PayloadError as err:
        raise _bad(path, number, str(err)) from err
    if batch.site != config.site_id:
        raise _bad(path, number, f"readings of another site, {batch.site[:80]!r}")
    if batch.epoch != epoch:
        raise _bad(path, number, f"readings of another seq epoch, {batch.epoch[:80]!r}")
    return batch


def _readings(path: Path, handle: IO[bytes], config: Config, epoch: str) -> Iterator[Reading]:
    for number, line in _payloads(path, handle, config):
        yield from _decode(path, number, line, config, epoch).readings


def verify_export(path: Path, handle: IO[bytes], config: Config, key: bytes) -> Verified:
    """Read the whole file once, streamed: header, every line, the count and the signature with
    `key`. Raise BadExport naming the line and what is wrong; nothing is published before this.
    Lines are decoded as they pass, so junk stops the reading at its line, not at the end."""
    handle.seek(0)
    mac = hmac.new(key, digestmod=hashlib.sha256)
    header: dict[str, Any] = {}
    signature = b""
    count = number = 0
    lines = _lines(path, handle)
    for number, line in lines:
        if number == 1:
            header = _header(path, line, config)
        elif line.startswith(_SIGNATURE):
            signature = line
            if next(lines, None) is not None:
                raise _bad(path, number + 1, "lines after the signature")
            break
        else:
            count += len(_decode(path, number, line, config, export_epoch(header)).readings)
            if count > header["count"]:
                raise _bad(path, number, f"more readings than the header's {header['count']}")
        mac.update(line + b"\n")
    if number == 0:
        raise BadExport(f"{path} is empty")
    if not signature:
        raise BadExport(f"{path} has no signature line: truncated, or not made by `buffer export`")
    expected = _SIGNATURE + mac.hexdigest().encode("ascii") + b'"}'
    if not hmac.compare_digest(signature, expected):
        raise _bad(
            path,
            number,
            "the signature does not match: the file was altered, or signed with another site's key",
        )
    if count != header["count"]:
        raise BadExport(f"{path} holds {count} readings, its header says {header['count']}")
    return Verified(header=header, signature=signature[len(_SIGNATURE) : -2].decode())


class SeqRanges:
    """Sorted, disjoint, inclusive seq ranges: what a progress file holds, never expanded into
    single seqs (a range [1, 10**18] is two numbers, not a set of 10**18)."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._ranges: list[list[int]] = []
        for first, last in sorted(ranges):
            self._append(first, last)

    def _append(self, first: int, last: int) -> None:
        if self._ranges and first <= self._ranges[-1][1] + 1:
            self._ranges[-1][1] = max(self._ranges[-1][1], last)
        else:
            self._ranges.append([first, last])

    def __contains__(self, seq: int) -> bool:
        index = bisect.bisect_right(self._ranges, [seq, _SEQ_MAX + 1]) - 1
        return index >= 0 and self._ranges[index][0] <= seq <= self._ranges[index][1]

    def add(self, seqs: Iterable[int]) -> None:
        merged = SeqRanges([*((a, b) for a, b in self._ranges), *((s, s) for s in seqs)])
        self._ranges = merged._ranges

    def as_lists(self) -> list[list[int]]:
        return [list(r) for r in self._ranges]


def read_progress(path: Path, signature: str) -> SeqRanges:
    """The acknowledged ranges saved for the file with this signature; empty when there is no
    progress file or it belongs to another file. Raise BadExport when it is not a progress file."""
    try:
        with path.open("rb") as handle:
            data = handle.read(PROGRESS_MAX_BYTES + 1)
    except FileNotFoundError:
        return SeqRanges()
    except OSError as err:
        raise BadExport(f"cannot read the progress file {path}: {err.strerror}") from err
    advice = f"delete {path} to start the import over (the collector drops repeats)"
    if len(data) > PROGRESS_MAX_BYTES:
        raise BadExport(f"{path} is over {PROGRESS_MAX_BYTES} bytes: not a progress file; {advice}")
    try:
        saved = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise BadExport(f"{path} is not a progress file ({err}); {advice}") from err
    if not isinstance(saved, dict) or saved.get("file_hmac") != signature:
        return SeqRanges()  # another file's, or an older format's: start over
    acked = saved.get("acked")
    if not isinstance(acked, list) or not all(_is_range(r) for r in acked):
        raise BadExport(f"{path} holds no list of [first, last] seq ranges; {advice}")
    return SeqRanges((first, last) for first, last in acked)


def _is_range(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1] <= _SEQ_MAX
    )


class Progress:
    """Acknowledged seq ranges of one export file, saved atomically after every acknowledgement."""

    def __init__(self, path: Path, signature: str) -> None:
        self.path = path
        self._signature = signature
        self.acked = read_progress(path, signature)

    def add(self, seqs: tuple[int, ...]) -> None:
        self.acked.add(seqs)
        replace_json(self.path, {"file_hmac": self._signature, "acked": self.acked.as_lists()})


def _batches(
    path: Path,
    handle: IO[bytes],
    config: Config,
    *,
    epoch: str,
    skip: SeqRanges,
    skipped: list[int],
) -> Iterator[tuple[Reading, ...]]:
    """Batches of the readings not in `skip`; `skipped[0]` counts the others as they pass."""
    handle.seek(0)
    size = config.broker.batch_max_readings
    batch: list[Reading] = []
    for reading in _readings(path, handle, config, epoch):
        if reading.seq in skip:
            skipped[0] += 1
            continue
        batch.append(reading)
        if len(batch) >= size:
            yield tuple(batch)
            batch = []
    if batch:
        yield tuple(batch)


def import_export(
    path: Path,
    config: Config,
    *,
    progress_file: Path | None = None,
    stall_timeout_s: float = 120.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> Imported:
    """Publish an export to the configured broker, resuming after an earlier interrupted run.
    Raise KeyMissing without the site's key, BadExport for a file that fails verification (before
    anything is sent), BrokerRefused or NoProgress while delivering."""
    key = read_transfer_key(config.transfer.key_file)
    # One open handle for every pass: the file checked is the file sent.
    with path.open("rb") as source:
        return _import(
            path,
            source,
            config=config,
            key=key,
            progress_file=progress_file,
            stall_timeout_s=stall_timeout_s,
            should_stop=should_stop,
        )


def _import(
    path: Path,
    source: IO[bytes],
    *,
    config: Config,
    key: bytes,
    progress_file: Path | None,
    stall_timeout_s: float,
    should_stop: Callable[[], bool],
) -> Imported:
    start = time.monotonic()
    verified = verify_export(path, source, config, key)
    header = verified.header
    site = str(header["site"])
    epoch = export_epoch(header)
    progress = Progress(
        progress_file or path.with_name(path.name + ".progress"), verified.signature
    )
    skipped = [0]
    prefix = config.broker.topic_prefix
    marker = topic(prefix, site, "import")

    def note(state: str) -> bytes:
        return encode_import_marker(
            state=state, file=path.name, count=int(header["count"]), by=config.site_id
        )

    # The link's birth/last-will pair marks the import on its own topic, never the site's status.
    link = MqttLink(
        config.broker,
        client_id=f"{config.client_id}-import",
        will=Will(topic=marker, online=note("importing"), offline=note("stopped")),
    )
    batches = _batches(path, source, config, epoch=epoch, skip=progress.acked, skipped=skipped)
    resend: deque[tuple[Reading, ...]] = deque()
    flights: dict[tuple[int, int], tuple[Reading, ...]] = {}
    exhausted = False
    sent_now = messages = 0
    last_progress = time.monotonic()
    link.start()
    try:
        while not should_stop():
            while link.connected and len(flights) < config.broker.inflight_max:
                batch = resend.popleft() if resend else next(batches, None)
                if batch is None:
                    exhausted = True
                    break
                payload = encode_telemetry(
                    site,
                    batch,
                    epoch=epoch,
                    compress=config.broker.compression,
                    schema=config.broker.payload_schema,
                )
                handle = link.publish(topic(prefix, site, "telemetry"), payload)
                if handle is None:
                    resend.appendleft(batch)
                    break
                flights[handle] = batch
            if exhausted and not flights and not resend:
                break
            event = link.next_event(0.5)
            if isinstance(event, Acked):
                batch_or_none = flights.pop((event.generation, event.mid), None)
                if batch_or_none is None:
                    continue  # the import marker, or a flight voided by a reconnect
                if not event.ok:
                    raise BrokerRefused(
                        f"the broker refused telemetry of site {site}: {event.reason}"
                    )
                progress.add(tuple(r.seq for r in batch_or_none))
                sent_now += len(batch_or_none)
                messages += 1
                last_progress = time.monotonic()
            elif isinstance(event, Connected | Disconnected):
                # Flights of a lost connection will never be acknowledged: send them again. Only
                # those: a Connected event read after publishing on that very connection must not
                # send its flights twice.
                lost_up_to = event.generation - (1 if isinstance(event, Connected) else 0)
                lost = [key for key in flights if key[0] <= lost_up_to]
                batches_lost = sorted((flights.pop(key) for key in lost), key=lambda b: b[0].seq)
                resend.extendleft(reversed(batches_lost))
            elif isinstance(event, ConnectFailed) and event.refused:
                raise BrokerRefused(f"the broker refused the login: {event.reason}")
            if time.monotonic() - last_progress > stall_timeout_s:
                raise NoProgress(f"nothing acknowledged for {stall_timeout_s:.0f} s")
    finally:
        link.stop(timeout_s=2.0)
    return Imported(
        site=site,
        total=int(header["count"]),
        sent_now=sent_now,
        already=skipped[0],
        messages=messages,
        seconds=time.monotonic() - start,
        complete=skipped[0] + sent_now >= int(header["count"]),
    )

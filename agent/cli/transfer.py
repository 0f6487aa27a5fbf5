"""`buffer export` / `buffer import`: unsent readings carried on a USB stick when there is no backhaul.

The export file is gzip-compressed text, one JSON object per line. Line 1 is a header:
  {"format": "village-agent-buffer-export", "version": 1, "site", "epoch", "count", "first_seq",
   "exported_at", "clock_synced", "agent_version"}
Every following line is one telemetry payload of the MQTT contract (uncompressed `encode_telemetry`
JSON, at most 500 readings), so any consumer of the contract can read it with `zcat`. Export writes
schema 1, which every consumer reads (gzip already takes out what schema 2 would save); import reads
lines of either schema and publishes in the configured `broker.payload_schema`.

Export reads the buffer read-only in one read transaction (a consistent snapshot while the daemon keeps
running) and writes the file atomically. It deletes nothing: when the backhaul returns the daemon may
publish the same readings too, and the collector's dedupe on (site, epoch, seq) absorbs that.

Import publishes the readings under the file's site and epoch with their original seq (a file from
before epochs has none: epoch ""), QoS 1, a batch at a time within the in-flight window, and records
every acknowledged seq range in a progress file after each PUBACK. An interrupted import resumes
from there and re-sends only batches never acknowledged. A negative PUBACK stops the import with the
broker's reason; that batch is not recorded as done.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__
from agent.buffer.readonly import BufferView
from agent.buffer.store import Buffer
from agent.config.schema import Config
from agent.contract.control import encode_import_marker
from agent.contract.telemetry import PayloadError, decode_telemetry, encode_telemetry
from agent.contract.topics import topic
from agent.files import fsync_dir, read_json, replace_json
from agent.publish.link import Acked, Connected, ConnectFailed, Disconnected, MqttLink, Will
from agent.reading import Reading

FORMAT = "village-agent-buffer-export"
VERSION = 1
_LINE_READINGS = 500


class TransferError(Exception):
    """The export or import cannot go on; the message says why and what to do."""


class BadExport(TransferError):
    """The file is not a complete export (truncated, damaged, or another format)."""


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


def export_buffer(state_dir: Path, out: Path, *, now: float, clock_synced: bool) -> Exported:
    """Copy every unsent reading into `out`, atomically. Raise BufferError if the buffer is unusable."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
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
        written, last = 0, None
        try:
            with tmp.open("wb") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
                    packed.write(json.dumps(header).encode("utf-8") + b"\n")
                    for page in _pages(buffer):
                        line = encode_telemetry(
                            site, page, epoch=stats.epoch, compress=False, schema=1
                        )
                        packed.write(line + b"\n")
                        written += len(page)
                        last = page[-1].seq
                raw.flush()
                # The file leaves on a USB stick: it must be whole on the medium, not in a cache.
                os.fsync(raw.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
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


def _header(path: Path, handle: gzip.GzipFile) -> dict[str, Any]:
    try:
        header = json.loads(handle.readline())
    except (OSError, EOFError, ValueError) as err:
        raise BadExport(f"{path} is not a buffer export: {err}") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BadExport(f"{path} is not a village-agent buffer export")
    if header.get("version") != VERSION:
        raise BadExport(f"{path} has export version {header.get('version')}, this reads {VERSION}")
    return header


def _readings(path: Path) -> Iterator[Reading]:
    with gzip.open(path, "rb") as handle:
        header = _header(path, handle)
        try:
            for number, line in enumerate(handle, start=2):
                try:
                    batch = decode_telemetry(line.rstrip(b"\n"))
                except PayloadError as err:
                    raise BadExport(f"{path} line {number}: {err}") from err
                if batch.site != header["site"]:
                    raise BadExport(f"{path} line {number}: another site, {batch.site!r}")
                if batch.epoch != export_epoch(header):
                    raise BadExport(f"{path} line {number}: another seq epoch, {batch.epoch!r}")
                yield from batch.readings
        except (OSError, EOFError) as err:
            raise BadExport(f"{path} is damaged or truncated: {err}") from err


def export_epoch(header: dict[str, Any]) -> str:
    """The seq epoch of an export's readings; "" for a file written before epochs existed."""
    epoch = header.get("epoch", "")
    return epoch if isinstance(epoch, str) else ""


def verify_export(path: Path) -> tuple[dict[str, Any], str]:
    """Read the whole file once: the header, and a digest that names it in the progress file.
    Raise BadExport unless every line decodes and the count matches the header."""
    with gzip.open(path, "rb") as handle:
        header = _header(path, handle)
    count = sum(1 for _ in _readings(path))
    if count != header.get("count"):
        raise BadExport(f"{path} holds {count} readings, its header says {header.get('count')}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return header, digest


class Progress:
    """Acknowledged seq ranges of one export file, saved atomically after every acknowledgement."""

    def __init__(self, path: Path, digest: str) -> None:
        self.path = path
        self._digest = digest
        self.acked: set[int] = set()
        saved = read_json(path)
        if saved is not None and saved.get("sha256") == digest:
            for first, last in saved.get("acked", []):
                self.acked.update(range(int(first), int(last) + 1))

    def add(self, seqs: tuple[int, ...]) -> None:
        self.acked.update(seqs)
        ranges: list[list[int]] = []
        for seq in sorted(self.acked):
            if ranges and seq == ranges[-1][1] + 1:
                ranges[-1][1] = seq
            else:
                ranges.append([seq, seq])
        replace_json(self.path, {"sha256": self._digest, "acked": ranges})


def _batches(path: Path, skip: set[int], size: int) -> Iterator[tuple[Reading, ...]]:
    batch: list[Reading] = []
    for reading in _readings(path):
        if reading.seq in skip:
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
    """Publish an export to the configured broker, resuming after an earlier interrupted run."""
    start = time.monotonic()
    header, digest = verify_export(path)
    site = str(header["site"])
    epoch = export_epoch(header)
    progress = Progress(progress_file or path.with_name(path.name + ".progress"), digest)
    already = len(progress.acked)
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
    batches = _batches(path, set(progress.acked), config.broker.batch_max_readings)
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
        already=already,
        messages=messages,
        seconds=time.monotonic() - start,
        complete=len(progress.acked) >= int(header["count"]),
    )

"""From MQTT messages to a `Parcel`: the topic names the site and the kind, the payload is decoded
by the agent's own contract code. A message that breaks the contract is reported and skipped, never
stored half: a bad payload does not get better by being delivered again."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from collector.decode import PayloadError, Reading, decode_telemetry
from collector.store.rows import Alarm, ImportState, Parcel, Row, Status

KINDS = ("telemetry", "status", "event", "import")


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """What the subscriber received: enough to parse and, later, to acknowledge it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int  # which connection it came on: an acknowledgement is only valid on that one
    received_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    topic: str
    reason: str


def tags_json(tags: Mapping[str, str]) -> str:
    """Canonical JSON of a tags mapping: keys sorted, no spaces, so equal tags are equal text."""
    return _tags_json(tuple(tags.items()))


@functools.lru_cache(maxsize=65536)
def _tags_json(pairs: tuple[tuple[str, str], ...]) -> str:
    # A province has a few thousand distinct tag sets, each seen every round: encode each once.
    return json.dumps(dict(pairs), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row(site: str, epoch: str, reading: Reading) -> Row:
    """A reading as stored, keyed by (site, epoch, seq): seqs that start again in a new epoch (a
    gateway's new buffer) are other readings, not repeats. Agents older than epochs send ""."""
    return Row(
        site=site,
        epoch=epoch,
        seq=reading.seq,
        raw_ts=reading.ts_ms,
        synced=reading.synced,
        boot_id=reading.boot_id,
        mono_ms=reading.mono_ms,
        metric=reading.metric,
        tags=tags_json(reading.tags),
        value=reading.value,
    )


def split_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """(site, kind) of `{prefix}/{site}/{kind}`, or None for any other topic."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) != 2 or not parts[0] or parts[1] not in KINDS:
        return None
    return parts[0], parts[1]


def _json_object(payload: bytes) -> dict[str, object]:
    try:
        body = json.loads(payload)
    except ValueError as err:
        raise PayloadError(f"not JSON: {err}") from err
    if not isinstance(body, dict):
        raise PayloadError("expected a JSON object")
    return body


def _text(body: dict[str, object], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def parcel(prefix: str, messages: Sequence[Message]) -> tuple[Parcel, list[Rejected]]:
    """Everything the messages carry, and the messages that could not be used, with why."""
    rows: list[Row] = []
    statuses: list[Status] = []
    alarms: list[Alarm] = []
    imports: list[ImportState] = []
    seen: dict[str, int] = {}
    rejected: list[Rejected] = []
    for message in messages:
        where = split_topic(prefix, message.topic)
        if where is None:
            rejected.append(Rejected(topic=message.topic, reason="not a topic of the contract"))
            continue
        site, kind = where
        try:
            if kind == "telemetry":
                batch = decode_telemetry(message.payload)
                if batch.site != site:
                    raise PayloadError(f"the payload says site {batch.site!r}, the topic {site!r}")
                rows += (row(site, batch.epoch, r) for r in batch.readings)
                top = max((r.seq for r in batch.readings), default=0)
                seen[site] = max(seen.get(site, 0), top)
            elif kind == "status":
                if not message.payload:
                    continue  # a retained status being cleared
                body = _json_object(message.payload)
                state = _text(body, "state")
                if state is None:
                    raise PayloadError("a status needs a 'state'")
                ts = body.get("ts")
                at = ts if isinstance(ts, int) and not isinstance(ts, bool) else message.received_ms
                version, config = _text(body, "version"), _text(body, "config")
                statuses.append(
                    Status(site=site, state=state, version=version, config=config, at_ms=at)
                )
            elif kind == "event":
                body = _json_object(message.payload)
                event = _text(body, "event")
                if event is None:
                    raise PayloadError("an alarm needs an 'event' name")
                ts = body.get("ts")
                at = ts if isinstance(ts, int) and not isinstance(ts, bool) else message.received_ms
                detail = json.dumps(body.get("detail"), sort_keys=True, ensure_ascii=False)
                alarms.append(Alarm(site=site, event=event, detail=detail, ts=at))
            else:
                if not message.payload:
                    continue
                state = _text(_json_object(message.payload), "state")
                if state is None:
                    raise PayloadError("an import marker needs a 'state'")
                imports.append(ImportState(site=site, state=state))
        except PayloadError as err:
            rejected.append(Rejected(topic=message.topic, reason=str(err)))
    return (
        Parcel(
            rows=tuple(rows),
            statuses=tuple(statuses),
            alarms=tuple(alarms),
            imports=tuple(imports),
            seen=seen,
        ),
        rejected,
    )

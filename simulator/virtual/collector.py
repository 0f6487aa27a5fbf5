"""A reference consumer of the MQTT contract that checks completeness per (site, epoch, seq).

Every reading an agent committed must arrive at least once: a seq never seen in its epoch is a loss,
a seq seen twice in one epoch is a duplicate (allowed, bounded by the in-flight window). Seqs that
start again under a new epoch (a gateway's recreated buffer) are new readings, neither. Queries name
the epoch; without one they read the site's only epoch, and refuse to guess between several. The
end-to-end tests and the simulator assert on this. It keeps readings as sent: putting those taken
before the gateway's clock synced on true time is the real collector's job (`collector/store`, its
`readings.ts`), which the simulator runs with `--collector-db`.

Telemetry of either payload schema (1 or 2) is read; the ledger counts messages per schema.

The network thread only files each message with its arrival time; decoding happens when someone asks.
A slow subscriber makes the broker queue, and past its queue limit (mosquitto's max_queued_messages,
1000 by default) drop, messages: that would look like a gateway's loss when it is the consumer's.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.contract.telemetry import PayloadError, decode_telemetry
from agent.reading import Reading

_KINDS = ("telemetry", "event")
_ids = itertools.count(1)


class ManyEpochs(ValueError):
    """A query without an epoch on a site that sent several: name the one to count."""


@dataclass(slots=True)
class SeriesLedger:
    """What arrived of one seq series: one site's readings of one epoch, by seq."""

    readings: dict[int, Reading] = field(default_factory=dict)
    copies: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    first_arrival: dict[int, float] = field(default_factory=dict)  # time.time() at first arrival

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.copies.values() if n > 1)


@dataclass(slots=True)
class SiteLedger:
    """What arrived from one site, its readings per epoch."""

    epochs: dict[str, SeriesLedger] = field(default_factory=dict)
    status: str | None = None
    alarms: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[tuple[Reading, Reading]] = field(default_factory=list)
    schemas: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # messages per schema

    @property
    def duplicates(self) -> int:
        """Repeats of an (epoch, seq) already seen, over every epoch."""
        return sum(series.duplicates for series in self.epochs.values())

    def series(self, epoch: str | None = None) -> SeriesLedger:
        """The readings of `epoch`; None: of the site's only epoch (raise ManyEpochs if several)."""
        if epoch is not None:
            return self.epochs.get(epoch) or SeriesLedger()
        if len(self.epochs) > 1:
            raise ManyEpochs(f"the site sent {len(self.epochs)} epochs ({sorted(self.epochs)})")
        return next(iter(self.epochs.values()), SeriesLedger())


@dataclass(frozen=True, slots=True, kw_only=True)
class Completeness:
    site: str
    expected: int
    delivered: int
    lost: tuple[int, ...]
    duplicates: int
    worst_delay_s: float | None


def same_reading(first: Reading, again: Reading) -> bool:
    """Whether a repeat is the same reading sent again. Its time may differ only by a re-stamp
    after the clock synced (same boot and monotonic time, now synced)."""
    same_time = first.ts_ms == again.ts_ms or (not first.synced and again.synced)
    return (
        first.metric == again.metric
        and first.tags == again.tags
        and first.value == again.value
        and first.boot_id == again.boot_id
        and first.mono_ms == again.mono_ms
        and same_time
    )


class Collector:
    """Subscribes to `{prefix}/+/telemetry`, `.../event` and `.../status`; keeps a ledger per site."""

    def __init__(
        self,
        url: str,
        topic_prefix: str,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    ) -> None:
        """`protocol` is paho's MQTTv5 or MQTTv311: brokers without MQTT 5 (RabbitMQ before 3.13,
        NATS) accept only the latter."""
        self._protocol = protocol
        self._credentials = (username, password)
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 1883
        self._prefix = topic_prefix
        self._client_id = client_id or f"village-collector-{os.getpid()}-{next(_ids)}"
        self._lock = threading.Lock()
        self._inbox: list[tuple[str, bytes, float]] = []
        self._sites: dict[str, SiteLedger] = defaultdict(SiteLedger)
        self._rejected: list[str] = []
        self.messages = 0
        self._telemetry_received = 0  # telemetry messages filed, counted as they arrive
        self._subscribed = threading.Event()
        self._client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=self._protocol
        )
        if self._credentials[0] is not None:
            client.username_pw_set(*self._credentials)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        # Take as many unacknowledged messages as the broker will send: filing them costs little.
        client.max_inflight_messages_set(1000)
        return client

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        topics = [(f"{self._prefix}/+/{kind}", 1) for kind in (*_KINDS, "status")]
        client.subscribe(topics)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._inbox.append((message.topic, bytes(message.payload), time.time()))
            if message.topic.endswith("/telemetry"):
                self._telemetry_received += 1

    def _absorb(self) -> None:
        """Decode what the network thread filed. Call with the lock held."""
        inbox, self._inbox = self._inbox, []
        for topic, payload, arrived in inbox:
            self.messages += 1
            parts = topic.split("/")
            site, kind = parts[-2], parts[-1]
            if kind == "status":
                self._sites[site].status = payload.decode("utf-8", "replace")
                continue
            if kind == "event":
                self._absorb_alarm(topic, site, payload)
                continue
            try:
                batch = decode_telemetry(payload)
            except PayloadError as err:
                self._rejected.append(f"{topic}: {err}")
                continue
            if batch.site != site:
                self._rejected.append(f"{topic}: payload says site {batch.site!r}")
                continue
            ledger = self._sites[site]
            ledger.schemas[batch.schema] += 1
            series = ledger.epochs.setdefault(batch.epoch, SeriesLedger())
            for reading in batch.readings:
                series.copies[reading.seq] += 1
                first = series.readings.get(reading.seq)
                if first is None:
                    series.readings[reading.seq] = reading
                    series.first_arrival[reading.seq] = arrived
                elif not same_reading(first, reading):
                    # A repeat must be the same reading; another one under a known (epoch, seq)
                    # means the gateway reused a seq, and the collector's dedupe would drop it.
                    ledger.conflicts.append((first, reading))

    def _absorb_alarm(self, topic: str, site: str, payload: bytes) -> None:
        """The event topic carries alarms (`{"event", "detail", "ts", ...}`), not readings."""
        try:
            alarm = json.loads(payload)
        except ValueError as err:
            self._rejected.append(f"{topic}: not JSON ({err})")
            return
        if not isinstance(alarm, dict) or not isinstance(alarm.get("event"), str):
            self._rejected.append(f"{topic}: an alarm needs an 'event' name")
            return
        self._sites[site].alarms.append(alarm)

    def telemetry_received(self) -> int:
        """Telemetry messages that reached this consumer so far (repeats included)."""
        with self._lock:
            return self._telemetry_received

    def start(self, timeout_s: float = 10.0) -> Collector:
        self._subscribed.clear()
        self._client = self._new_client()
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError(f"collector could not subscribe at {self._host}:{self._port}")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def absorb(self) -> None:
        """Decode what has arrived so far (queries do it anyway; this spreads the work out)."""
        with self._lock:
            self._absorb()

    @property
    def sites(self) -> dict[str, SiteLedger]:
        with self._lock:
            self._absorb()
            return self._sites

    def alarms(self, site: str) -> list[dict[str, Any]]:
        """The alarms a site sent on its event topic, in arrival order."""
        with self._lock:
            self._absorb()
            return list(self._sites[site].alarms) if site in self._sites else []

    def conflicts(self, site: str) -> list[tuple[Reading, Reading]]:
        """(first copy, later copy) for every repeat of a seq that was not the same reading."""
        with self._lock:
            self._absorb()
            return list(self._sites[site].conflicts) if site in self._sites else []

    @property
    def rejected(self) -> list[str]:
        with self._lock:
            self._absorb()
            return list(self._rejected)

    def _series(self, site: str, epoch: str | None) -> SeriesLedger:
        """Call with the lock held."""
        self._absorb()
        return self._sites[site].series(epoch)

    def epochs(self, site: str) -> list[str]:
        """The epochs `site` sent readings of, in order of first arrival."""
        with self._lock:
            self._absorb()
            return list(self._sites[site].epochs)

    def seqs(self, site: str, epoch: str | None = None) -> set[int]:
        with self._lock:
            return set(self._series(site, epoch).readings)

    def count_in(self, site: str, last_seq: int, epoch: str | None = None) -> int:
        """How many distinct seqs from 1 to last_seq of `epoch` arrived from `site`."""
        with self._lock:
            readings = self._series(site, epoch).readings
            if len(readings) == last_seq and (not readings or max(readings) == last_seq):
                return last_seq
            return sum(1 for seq in readings if 1 <= seq <= last_seq)

    def readings(self, site: str, epoch: str | None = None) -> list[Reading]:
        """The readings of one epoch, one per seq, by seq."""
        with self._lock:
            readings = self._series(site, epoch).readings
            return [readings[s] for s in sorted(readings)]

    def arrivals(self, site: str, epoch: str | None = None) -> dict[int, float]:
        """seq -> time.time() of its first arrival, in one epoch."""
        with self._lock:
            return dict(self._series(site, epoch).first_arrival)

    def duplicates(self, site: str) -> int:
        with self._lock:
            self._absorb()
            return self._sites[site].duplicates

    def wait_for(
        self, site: str, seqs: Iterable[int], timeout_s: float, epoch: str | None = None
    ) -> bool:
        """Wait until every seq in `seqs` of `epoch` arrived from `site`; True if they all did in
        time."""
        wanted = set(seqs)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if wanted <= self.seqs(site, epoch):
                return True
            time.sleep(0.05)
        return wanted <= self.seqs(site, epoch)

    def wait_counts(
        self,
        wanted: Mapping[str, tuple[int, int]],
        timeout_s: float,
        epochs: Mapping[str, str] | None = None,
    ) -> bool:
        """Wait until, per site, at least `need` distinct seqs of 1..last_seq arrived, given as
        site -> (last_seq, need), in the site's epoch given in `epochs` (else its only one). True
        if all did in time."""
        named = epochs or {}
        deadline = time.monotonic() + timeout_s
        pending = dict(wanted)
        while True:
            pending = {
                s: w for s, w in pending.items() if self.count_in(s, w[0], named.get(s)) < w[1]
            }
            if not pending or time.monotonic() >= deadline:
                return not pending
            time.sleep(0.05)

    def completeness(
        self, site: str, expected: Iterable[int], epoch: str | None = None
    ) -> Completeness:
        """Compare what arrived of `epoch` against the seqs the agent committed in it (delay in
        real time). Duplicates are repeats of an (epoch, seq), over all the site's epochs."""
        wanted = sorted(set(expected))
        with self._lock:
            series = self._series(site, epoch)
            lost = tuple(s for s in wanted if s not in series.readings)
            delays = [
                series.first_arrival[s] - series.readings[s].ts_ms / 1000
                for s in wanted
                if s in series.readings and series.readings[s].synced
            ]
            return Completeness(
                site=site,
                expected=len(wanted),
                delivered=len(wanted) - len(lost),
                lost=lost,
                duplicates=self._sites[site].duplicates,
                worst_delay_s=max(delays) if delays else None,
            )

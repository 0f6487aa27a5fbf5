"""The agent's rounds: measure, stamp, commit through the outbox, publish, and keep the status file.

`Agent` holds no loop of its own time: `round()` and `service()` are called by `run_loop()`
(agent.daemon.loop) with the real clock, or by the simulator with a virtual one.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from agent import __version__
from agent.buffer.damage import stand_in
from agent.buffer.errors import BufferError, CorruptBuffer
from agent.buffer.store import Appended, Buffer, BufferStats
from agent.clock import Clock
from agent.config.load import config_digest
from agent.config.schema import Config
from agent.contract.control import encode_alarm
from agent.contract.topics import topic
from agent.daemon.state import StatusRecord
from agent.files import status_path
from agent.history.journal import History
from agent.probes.base import Probe
from agent.probes.uptime import BackhaulTracker
from agent.publish.link import (
    Acked,
    Connected,
    ConnectFailed,
    Disconnected,
    LinkEvent,
)
from agent.publish.outbox import Link, Outbox
from agent.reading import Sample, Stamp

log = structlog.get_logger("agent")

# Rounds kept in memory while the buffer cannot be written (disk full, card read-only).
PENDING_ROUNDS_MAX = 120

# Opens the real buffer (and says what its opening found, as event readings).
Reopen = Callable[[], tuple[Buffer, list[Sample]]]


class AgentLink(Link, Protocol):
    """What the agent needs of its broker connection: an `MqttLink`, or the simulator's stand-in
    that cuts it when the simulated network is down."""

    def next_event(self, timeout_s: float) -> LinkEvent | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundResult:
    samples: int
    appended: Appended | None
    failed_probes: tuple[str, ...]


def measure(
    probes: Sequence[Probe], should_stop: Callable[[], bool] = lambda: False
) -> tuple[list[Sample], list[str]]:
    """Run every probe; one that fails is logged and skipped so the others still count. When the
    agent is stopping, the probes not yet run are left out: what was measured is still kept."""
    samples: list[Sample] = []
    failed: list[str] = []
    for probe in probes:
        if should_stop():
            log.info("round_cut_short", skipped_from=probe.name, reason="stopping")
            break
        try:
            samples.extend(probe.collect())
        except Exception as err:
            failed.append(probe.name)
            log.warning("probe_failed", probe=probe.name, error=str(err))
    return samples, failed


class Agent:
    """One site's agent, built by the composition root with real or simulated parts."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        boot_id: str,
        probes: Sequence[Probe],
        outbox: Outbox,
        link: AgentLink,
        start_samples: Sequence[Sample] = (),
        reopen: Reopen | None = None,
        opened: bool = True,
        lost_unrecorded: int = 0,
        history: History | None = None,
    ) -> None:
        """`history` keeps the technician's 14 days of hourly summaries from every round.
        `reopen` opens the buffer again, quarantining it if damaged: at once when a read finds
        damage, and round after round when start-up found the disk refusing it (`opened` False:
        `buffer` is an empty stand-in). `lost_unrecorded` counts readings a previous run held in
        memory and never wrote, added to the buffer's dropped count once it takes writes."""
        self.site = config.site_id
        self._clock = clock
        self._boot_id = boot_id
        self._probes = probes
        self.outbox = outbox
        self.buffer = outbox.buffer
        self._link = link
        self._event_topic = topic(config.broker.topic_prefix, config.site_id, "event")
        self._status_file = status_path(config.state_dir, config.status_dir)
        self._trust_wall_clock = config.clock.trust_wall_clock
        self._backhaul = BackhaulTracker(clock)
        self._synced = False
        self._pending: deque[tuple[Stamp, list[Sample]]] = deque()
        self._pending_lost = lost_unrecorded
        self._pending_lost_unrecorded = lost_unrecorded
        self._opener = reopen
        self._reopen = None if opened else reopen
        self._refused_since: float | None = None
        self._status_failing = False
        self._delete_failing = False
        self._last_alarm = 0.0
        self._next_samples: list[Sample] = list(start_samples)
        self._config_digest = config_digest(config)
        self._started_wall = clock.wall()
        self.last_round_wall: float | None = None
        self.last_buffer_error: str | None = None
        self._history = history
        self._history_failing = False

    # -- measuring ------------------------------------------------------------------------------
    def stamp(self) -> Stamp:
        synced = self._trust_wall_clock or self._clock.synced()
        wall, mono = self._clock.wall(), self._clock.monotonic()
        if synced and not self._synced:
            self._synced = True
            self._restamp(wall, mono)
        return Stamp(
            ts_ms=round(wall * 1000),
            mono_ms=round(mono * 1000),
            boot_id=self._boot_id,
            synced=synced,
        )

    def _restamp(self, wall: float, mono: float) -> None:
        offset_ms = round((wall - mono) * 1000)
        try:
            fixed = self.buffer.restamp(self._boot_id, offset_ms)
        except BufferError as err:
            log.error("restamp_failed", error=str(err))
            return
        if fixed:
            log.info("clock_synced_readings_restamped", readings=fixed, offset_ms=offset_ms)

    def round(self, should_stop: Callable[[], bool] = lambda: False) -> RoundResult:
        """Measure once and commit the round to the buffer in one transaction."""
        started = self._clock.monotonic()
        samples, failed = measure(self._probes, should_stop)
        samples += self._backhaul.update(samples)
        stamp = self.stamp()
        stats = self.buffer.stats()
        samples += self._next_samples
        self._next_samples = []
        samples += [
            Sample(metric="buffer.backlog_readings", value=self.backlog(stats)),
            Sample(
                metric="buffer.dropped_total",
                value=self.dropped_total(stats),
            ),
            Sample(metric="publisher.rejected_total", value=self.outbox.stats.rejected_total),
            Sample(metric="buffer.unconfirmed_readings", value=stats.unconfirmed),
            Sample(
                metric="buffer.unconfirmed_released_total",
                value=stats.unconfirmed_released_total,
            ),
        ]
        self._pending.append((stamp, samples))
        self._note_history(stamp, samples)
        appended = self._flush_pending()
        self.last_round_wall = self._clock.wall()
        # One line per round at info: the journal shows the agent alive and how it keeps up.
        log.info(
            "round_done",
            readings=len(samples),
            duration_s=round(self._clock.monotonic() - started, 3),
            backlog=self.backlog(),
            failed_probes=",".join(failed) or None,
            pending_in_memory=len(self._pending) or None,
        )
        return RoundResult(samples=len(samples), appended=appended, failed_probes=tuple(failed))

    def _flush_pending(self) -> Appended | None:
        """Commit waiting rounds oldest first. While the buffer refuses writes (disk full, card
        read-only) rounds wait in memory, bounded; the office is alarmed on the event topic at once
        and gets a durable event with the duration once the buffer takes writes again."""
        last: Appended | None = None
        if self._reopen is not None and not self._open_late():
            return None
        while self._pending:
            stamp, samples = self._pending[0]
            try:
                last = self.outbox.commit(stamp, samples)
            except BufferError as err:
                self._damage_found(err)
                self._buffer_refused(err)
                return None
            self._pending.popleft()
            if last.dropped:
                log.warning("buffer_full_dropped_oldest", dropped=last.dropped)
        if self._refused_since is not None:
            self._buffer_recovered()
        return last

    def _damage_found(self, err: BufferError) -> None:
        """A round that no longer decodes, found while running: close the file and open it again
        at the next round, which quarantines it and salvages the rest. Meanwhile an empty stand-in
        answers reads, and rounds wait in memory."""
        if not isinstance(err, CorruptBuffer) or self._opener is None or self._reopen is not None:
            return
        log.error("buffer_damaged_while_running", error=str(err))
        last_seq, epoch = self.buffer.stats().last_seq, self.buffer.epoch
        self.buffer.close()
        self.buffer = self.outbox.buffer = stand_in(self.site, last_seq=last_seq, epoch=epoch)
        self._reopen = self._opener

    def _open_late(self) -> bool:
        """Try to open the buffer start-up could not; True once it is open."""
        assert self._reopen is not None
        try:
            buffer, samples = self._reopen()
        except BufferError as err:
            # Tried again at every round: a full disk is freed, a card is repaired.
            self._buffer_refused(err)
            return False
        self._reopen = None
        self.buffer.close()
        self.buffer = self.outbox.buffer = buffer
        self._next_samples.extend(samples)
        log.info("buffer_opened_late", backlog=buffer.count)
        return True

    def flush_held(self) -> int:
        """One more try to commit the rounds held in memory (the agent is stopping); return how
        many readings never reached the buffer's count of losses: held, or lost beyond the bound
        and not yet added to it."""
        if self._pending:
            self._flush_pending()
        return self.held_lost()

    def held_lost(self) -> int:
        """Readings in memory that the buffer never took, and losses it does not count yet."""
        return sum(len(samples) for _, samples in self._pending) + self._pending_lost_unrecorded

    def _buffer_refused(self, err: BufferError) -> None:
        now = self._clock.monotonic()
        while len(self._pending) > PENDING_ROUNDS_MAX:
            _, lost = self._pending.popleft()
            self._pending_lost += len(lost)
            self._pending_lost_unrecorded += len(lost)
        first = self._refused_since is None
        if first:
            self._refused_since = now
        self.last_buffer_error = str(err)
        # Loud but not a flood: once at the start, then every ten minutes.
        if first or now - self._last_alarm >= 600:
            self._last_alarm = now
            log.error(
                "buffer_write_failed",
                error=str(err),
                pending_rounds=len(self._pending),
                message="readings wait in memory; free space or fix the SD card",
            )
            self.alarm("buffer_unwritable", str(err))

    def _buffer_recovered(self) -> None:
        assert self._refused_since is not None
        duration = self._clock.monotonic() - self._refused_since
        self._refused_since = None
        self.last_buffer_error = None
        log.info("buffer_write_recovered", after_s=round(duration, 1), lost=self._pending_lost)
        try:
            self.buffer.add_dropped(self._pending_lost_unrecorded)
            self._pending_lost_unrecorded = 0
        except BufferError as err:
            log.warning("buffer_drop_count_not_saved", error=str(err))
        self._next_samples.append(
            Sample(metric="event.buffer_unwritable_s", value=round(duration, 1))
        )

    def alarm(self, kind: str, detail: str) -> bool:
        """Publish an alarm on the event topic straight away, outside the buffer: for the moments
        when the buffer itself cannot take a reading. Best effort; True if sent."""
        payload = encode_alarm(
            site=self.site, kind=kind, detail=detail, ts_ms=round(self._clock.wall() * 1000)
        )
        return self._link.publish(self._event_topic, payload) is not None

    # -- publishing -----------------------------------------------------------------------------
    def service(self, wait_s: float = 0.0, *, send: bool = True) -> int:
        """Handle link events (waiting up to wait_s for the first), delete acknowledged rows and
        send what the window allows. Return how many events were handled."""
        handled = 0
        event = self._link.next_event(wait_s)
        while event is not None:
            self.outbox.handle(event, mono=self._clock.monotonic(), wall=self._clock.wall())
            self._log_link_event(event)
            if not isinstance(event, Acked):
                # The status file follows the broker state and the collector's confirmation at
                # once, not only at the next round.
                self.write_status()
            handled += 1
            event = self._link.next_event(0)
        try:
            # While the buffer refuses appends (disk full) deletes are what frees it: at once.
            self.outbox.settle(now=self._refused_since is not None)
            self._delete_failing = False
        except BufferError as err:
            # Once per streak: a read-only card would otherwise log this on every turn of the loop.
            if not self._delete_failing:
                log.warning("buffer_delete_failed", error=str(err))
            self._delete_failing = True
        try:
            if send:
                sent = self.outbox.pump(self._clock.monotonic())
                if sent:
                    log.debug(
                        "publish_batches_sent",
                        messages=sent,
                        in_flight=self.outbox.in_flight,
                        bytes_total=self.outbox.stats.payload_bytes,
                    )
        except BufferError as err:
            log.error("buffer_read_failed", error=str(err))
            self._damage_found(err)
        return handled

    def _log_link_event(self, event: LinkEvent) -> None:
        if isinstance(event, Connected):
            log.info(
                "broker_connected",
                backlog=self.backlog(),
                protocol=event.version,
                protocol_why=event.why,
            )
        elif isinstance(event, ConnectFailed):
            log.warning(
                "broker_unreachable",
                reason=event.reason,
                retry_in_s=round(event.retry_in_s, 1),
                backlog=self.backlog(),
                message="measuring on; readings wait on disk until the broker is back",
            )
        elif isinstance(event, Disconnected):
            log.warning(
                "broker_disconnected", reason=event.reason, retry_in_s=round(event.retry_in_s, 1)
            )
        elif isinstance(event, Acked) and not event.ok:
            log.error("broker_rejected_message", reason=event.reason, mid=event.mid)

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> StatusRecord:
        stats = self.buffer.stats()
        sent = self.outbox.stats
        confirm = sent.confirm
        return StatusRecord(
            site=self.site,
            version=__version__,
            config=self._config_digest,
            pid=os.getpid(),
            boot_id=self._boot_id,
            started_at=self._started_wall,
            updated_at=self._clock.wall(),
            last_round_at=self.last_round_wall,
            last_ack_at=sent.last_ack_ts,
            broker_state=sent.broker_state,
            broker_protocol=sent.protocol,
            broker_protocol_why=sent.protocol_why,
            broker_protocol_detail=sent.protocol_detail,
            last_error=self.last_buffer_error or sent.last_error,
            last_disconnect=sent.last_disconnect,
            last_disconnect_at=sent.last_disconnect_ts,
            backlog=self.backlog(stats),
            last_seq=stats.last_seq,
            epoch=self.buffer.epoch,
            oldest_unsent_ts_ms=stats.oldest_ts_ms,
            dropped_total=self.dropped_total(stats),
            pending_in_memory=sum(len(samples) for _, samples in self._pending),
            lost_unrecorded=self._pending_lost_unrecorded,
            rejected_total=sent.rejected_total,
            readings_acked=sent.readings_acked,
            in_flight=self.outbox.in_flight,
            clock_synced=self._synced,
            confirm_seen=self.buffer.unconfirmed.active,
            confirmed_epoch=confirm.epoch if confirm else None,
            confirmed_through=confirm.through if confirm else None,
            confirm_missing=", ".join(f"{lo}-{hi}" for lo, hi in confirm.missing)
            if confirm
            else "",
            last_confirm_at=sent.confirm_at,
            unconfirmed=stats.unconfirmed,
            unconfirmed_released_total=stats.unconfirmed_released_total,
        )

    def backlog(self, stats: BufferStats | None = None) -> int:
        """Readings not yet acknowledged by the broker (give `stats` if already read)."""
        return self.outbox.backlog(stats)

    def dropped_total(self, stats: BufferStats | None = None) -> int:
        """Readings lost for good: dropped by the buffer's bound, or held in memory while the
        buffer could not be written and then lost beyond the memory bound."""
        return (stats or self.buffer.stats()).dropped_total + self._pending_lost_unrecorded

    def _note_history(self, stamp: Stamp, samples: Sequence[Sample]) -> None:
        if self._history is not None:
            history = self._history
            self._keep_history(lambda: history.note(stamp, samples))

    def close_history(self) -> None:
        """At a clean stop: keep the hour being folded for the next start."""
        if self._history is not None:
            self._keep_history(self._history.close)

    def _keep_history(self, write: Callable[[], None]) -> None:
        """The technician's history is worth less than any reading: a full card stops it, said
        once in the log, and the round goes on."""
        try:
            write()
        except Exception as err:  # a card that refuses, or a file damaged beyond reading
            if not self._history_failing:
                log.warning("history_not_saved", error=f"{type(err).__name__}: {err}")
            self._history_failing = True
        else:
            self._history_failing = False

    def write_status(self) -> None:
        try:
            self.status().write(self._status_file)
        except OSError as err:
            if not self._status_failing:
                log.warning("status_write_failed", error=str(err))
            self._status_failing = True
        else:
            self._status_failing = False

    def status_line(self) -> str:
        return f"broker {self.outbox.stats.broker_state}, backlog {self.backlog()} readings"

//! The flush thread's loop: it asks the `Schedule` what to do, runs a cycle (sends what
//! the buffer holds, then maybe a spooled batch) or sleeps, and drains at close.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::delivery::Outcome;
use super::io::{Io, Wired};
use super::pending::Pending;
use super::schedule::{Plan, Schedule, Seen};
use super::{spill, thread_id, Shared, Worker, PAUSE_ASKED, PAUSING};
use crate::errors::Error;
use crate::pacer::Pacer;
use crate::transport::{Jitter, Transport};

impl Worker {
    pub(super) fn new(shared: Arc<Shared>) -> Worker {
        let io = Wired::new(Transport::for_config(&shared.config));
        Worker::with_io(shared, Box::new(io), Jitter::new())
    }

    pub(super) fn with_io(shared: Arc<Shared>, io: Box<dyn Io>, jitter: Jitter) -> Worker {
        let config = &shared.config;
        let per_minute = config.max_requests_per_minute;
        let pending = Pending::new(config.max_request_entries);
        let now = io.now();
        let schedule = Schedule::new(config.flush_interval, now);
        Worker {
            shared,
            io,
            jitter,
            pending,
            schedule,
            pacer: Pacer::new(per_minute, now),
            paced: per_minute > 0,
            overflow_reported: 0,
            spool: spill::SpoolSlot::default(),
        }
    }

    /// The thread's loop, until the shipper closes (returns `None`) or `pause` asks it to
    /// stop (returns itself, to be run again on a new thread).
    pub(super) fn run(mut self) -> Option<Worker> {
        self.open_spool();
        while self.shared.lifecycle.is_open() {
            let pause = self.shared.pause.compare_exchange(
                PAUSE_ASKED,
                PAUSING,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if pause.is_ok() {
                self.shared
                    .exiting_tid
                    .store(thread_id(), Ordering::Release);
                self.shared.notify_progress();
                return Some(self);
            }
            let now = self.io.now();
            self.tend_spool(now);
            let seen = self.seen();
            let (send, replay, full) = match self.schedule.plan(now, &seen) {
                Plan::Cycle { send, replay, full } => (send, replay, full),
                Plan::Sleep {
                    until,
                    quiet,
                    stalled,
                } => {
                    if stalled.is_some() {
                        self.stall_flushes(seen.flushes, stalled);
                    }
                    self.idle_until(now, until, quiet);
                    continue;
                }
            };
            let probed = send && self.send_cycle();
            let held = self.schedule.held_until();
            if self.schedule.failing() || held.is_some() {
                // Retries spent, or the server asked for a wait: what a flush waits for
                // can only go at the next tick or after the wait.
                self.stall_flushes(seen.flushes, held);
            }
            self.report_overflow();
            if replay && self.pending.is_empty() && !(self.schedule.failing() && probed) {
                self.replay_one();
            }
            self.schedule.cycle_done(self.io.now(), full, &self.seen());
            self.shared.notify_progress();
        }
        self.drain_for_close();
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.notify_progress();
        None
    }

    /// What the schedule is told of the buffer, the flushes and the spool.
    fn seen(&self) -> Seen {
        let s = &self.shared;
        Seen {
            flushes: s.flush_requests.load(Ordering::Acquire),
            batch_waiting: s.batch_waiting(self.pending.len(), self.pending.bytes()),
            waiting: self.waiting(),
            logged: s.stats.enqueued.load(Ordering::Acquire),
            replayable: self.pending.is_empty() && self.spool_backlog(),
        }
    }

    /// Sleeps until `until`, a push that fills a batch (unless `quiet`), a flush or a
    /// close; while the server fails, wakes every second to write to the spool.
    fn idle_until(&mut self, now: Instant, until: Instant, quiet: bool) {
        // While held or failing, a full buffer is no reason to wake: leave the flag set
        // so pushes do not unpark us for nothing.
        self.shared.wake_pending.store(quiet, Ordering::Release);
        // A batch filled between the look and the flag: go round again at once.
        if !quiet
            && self
                .shared
                .batch_waiting(self.pending.len(), self.pending.bytes())
        {
            return;
        }
        let until = self.next_spill(now).map_or(until, |at| until.min(at));
        self.io.park_until(until);
    }

    /// Tells the flushes up to `upto` that what they wait for cannot go before `until`
    /// (None: before the next tick, which a flush does not wait for).
    fn stall_flushes(&self, upto: u64, until: Option<Instant>) {
        let s = &self.shared;
        *s.stalled_until.lock() = until;
        if s.flushes_stalled.fetch_max(upto, Ordering::AcqRel) < upto {
            s.notify_progress();
        }
    }

    /// Whether entries wait to be sent.
    fn waiting(&self) -> bool {
        !self.pending.is_empty() || !self.shared.buffer.is_empty()
    }

    /// Sends what the buffer held when the cycle began, in requests as large as the
    /// server takes, until that is done or a delivery fails. A burst goes out whole,
    /// its last partial request too, while a steady stream of new entries cannot keep a
    /// cycle going forever. Returns whether it made a request.
    fn send_cycle(&mut self) -> bool {
        let mut budget = self.shared.buffer.len() + self.pending.len();
        let mut sent = false;
        while budget > 0 {
            self.fill_pending();
            if self.pending.is_empty() {
                break;
            }
            let n = self.pending.len();
            sent = true;
            let outcome = self.deliver(None);
            // What the full buffer set aside meanwhile goes to disk between requests.
            self.spill_evicted();
            match outcome {
                Outcome::Done => budget = budget.saturating_sub(n),
                // What the server took counts; the rest goes in front of what is queued.
                Outcome::Undecided => {
                    let resolved = n.saturating_sub(self.pending.len()).max(1);
                    budget = budget.saturating_sub(resolved);
                }
                Outcome::Retained => break,
            }
        }
        sent
    }

    /// Tops `pending` up from the buffer to a request's worth.
    pub(super) fn fill_pending(&mut self) {
        self.pending.fill(&self.shared.buffer);
        self.note_inflight();
    }

    /// Publishes the oldest entry the thread holds, for `flush`.
    pub(super) fn note_inflight(&self) {
        let min = self.pending.oldest_logged().unwrap_or(u64::MAX);
        self.shared.inflight_min_seq.store(min, Ordering::Release);
    }

    pub(super) fn clear_pending(&mut self) {
        self.pending.clear();
        self.note_inflight();
    }

    fn report_overflow(&mut self) {
        let total = self.shared.overflowed.load(Ordering::Acquire);
        if total > self.overflow_reported {
            let dropped = total - self.overflow_reported;
            self.overflow_reported = total;
            self.shared.report(&Error::QueueOverflow { dropped });
        }
    }

    /// Delivers what it can before the close deadline, waiting out a 429 if the wait ends
    /// in time, then writes the rest to the spool, or counts it as dropped.
    fn drain_for_close(&mut self) {
        let deadline = self.shared.deadline().unwrap_or_else(|| self.io.now());
        let deadline = self.sending_deadline(deadline);
        self.schedule.closing();
        loop {
            if let Some(hold) = self.schedule.take_hold() {
                let now = self.io.now();
                if hold > now && (hold >= deadline || !self.sleep(hold - now, false)) {
                    break;
                }
            }
            self.fill_pending();
            if self.pending.is_empty() || self.io.now() >= deadline {
                break;
            }
            if let Outcome::Retained = self.deliver(Some(deadline)) {
                if self.schedule.held_until().is_none() {
                    break;
                }
            }
        }
        self.spill_evicted();
        self.spill_backlog();
        self.close_spool();
        self.report_overflow();
        let mut lost = self.pending.len() as u64;
        self.clear_pending();
        while self.shared.buffer.pop().is_some() {
            lost += 1;
        }
        self.shared.give_up_at_close(lost);
    }
}

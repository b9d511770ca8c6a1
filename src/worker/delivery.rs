//! Delivering a batch: `Triage` decides which parts to send, and here each request is
//! posted, paced, retried, counted and reported.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::attempts::{Attempts, Verdict};
use super::pending::{wire_bytes, Origin};
use super::triage::{Answer, Step, Triage};
use super::Worker;
use crate::errors::Error;
use crate::protocol::Reply;
use crate::stats::Stats;

pub(super) enum Outcome {
    Done,
    /// The server took part of the batch; what is left goes again at the front of the
    /// next request's worth, whose later entries tell bad entries from an outage.
    Undecided,
    /// Not delivered for now; the batch stays at the front.
    Retained,
}

/// What became of one request's worth of entries.
enum Sent {
    Done,
    /// Refused as a whole with 400 or 413: worth sending again in halves.
    Split,
    /// Failed with a 500 on every try: an entry the server cannot store, or an outage.
    ServerFault(Error),
    Retained,
}

impl Worker {
    /// Delivers `pending`, in order but for entries the server cannot store, which
    /// `Triage` finds by sending parts of the batch again. A server that fails
    /// everything is an outage, not poison: all is kept for later.
    pub(super) fn deliver(&mut self, deadline: Option<Instant>) -> Outcome {
        let mut triage = Triage::in_parts(&self.pending.parts());
        let server_up = self.pending.evidence().server_up(self.requests_taken());
        if server_up {
            triage = triage.knowing_the_server_up();
        }
        let mut last_fault = None;
        loop {
            let request = match triage.next() {
                Step::Send(request) => request,
                Step::WantMore => {
                    // Spooled entries are not mixed with fresh ones.
                    let behind =
                        self.pending.origin() == Origin::Buffer && !self.shared.buffer.is_empty();
                    if behind && triage.taken() {
                        // The server is up: what is left goes in front of what follows.
                        self.retain_unresolved(triage.resolved(), None);
                        return Outcome::Undecided;
                    }
                    // Lent once, and only to a batch of one request: in an outage, what
                    // waits in memory outside the buffer stays within two requests.
                    let one = self.pending.len() <= self.shared.config.max_request_entries;
                    if behind && one && !triage.lent() && !server_up {
                        let lent = self.pending.borrow_request(&self.shared.buffer);
                        self.note_inflight();
                        triage.grow(lent);
                    } else {
                        triage.nothing_more();
                    }
                    continue;
                }
                Step::Done => {
                    self.clear_pending();
                    return Outcome::Done;
                }
                Step::Outage => {
                    if !triage.taken() {
                        self.pending.failed_whole(self.requests_taken());
                    }
                    return self.retain_unresolved(triage.resolved(), last_fault);
                }
            };
            let answer = match self.send(request.range.clone(), deadline, request.retries) {
                Sent::Done => Answer::Taken,
                Sent::Split => Answer::Split,
                Sent::ServerFault(error) => {
                    if request.confirm {
                        Stats::add(self.refused(), 1);
                        self.shared.report(&error);
                    }
                    last_fault = Some(error);
                    Answer::ServerFault
                }
                Sent::Retained => return self.retain_unresolved(triage.resolved(), None),
            };
            triage.answer(&request, answer);
        }
    }

    /// Keeps the entries of `pending` not yet resolved for a later cycle. `outage`: the
    /// server failed everything lately, with this error. A batch read back from the spool
    /// that fails so is no sign that what is logged would: only the spool rests.
    fn retain_unresolved(&mut self, resolved: &[bool], outage: Option<Error>) -> Outcome {
        self.pending.keep_unresolved(resolved);
        self.note_inflight();
        match (outage, self.pending.origin()) {
            (Some(error), Origin::Buffer) => self.fail_for_now(&error),
            (Some(error), Origin::Spool) => {
                self.schedule.replay_failed();
                self.shared.report(&error);
            }
            (None, _) => {}
        }
        Outcome::Retained
    }

    /// Sends `pending[range]` in one request, paced to the server's limit, and does what
    /// `Attempts` says of each failure (retries only when `retries` is set).
    fn send(&mut self, range: Range<usize>, deadline: Option<Instant>, retries: bool) -> Sent {
        // More entries waiting behind this request: the cycle's own, or new ones.
        let backlogged = self.pending.len() > range.len() || !self.shared.buffer.is_empty();
        let entries = range.len();
        let n = entries as u64;
        let body = self.batch_body(range);
        let max_retries = if retries {
            self.shared.config.max_retries
        } else {
            0
        };
        let mut attempts = Attempts::new(max_retries, entries);
        loop {
            if !self.wait_for_pacer() {
                return Sent::Retained;
            }
            let Some(timeout) = self.request_timeout(deadline) else {
                return Sent::Retained;
            };
            let error = match self.post(&body, n, timeout, backlogged) {
                Ok(reply) => {
                    self.record_reply(&reply, n, body.len());
                    return Sent::Done;
                }
                Err(error) => error,
            };
            let now = self.io.now();
            match attempts.judge(&error, now, self.shared.deadline(), &mut self.jitter) {
                // Not a failure: with a model of the server's limit the pacer does the
                // waiting, here, and probes again long before Logwell's blanket
                // `Retry-After: 60`; without one, the batch waits, whole, as long as the
                // server asks (the run loop or the close deadline).
                Verdict::RateLimited(retry_after) => {
                    if self.record_rate_limit(retry_after) {
                        return Sent::Retained;
                    }
                }
                Verdict::Split => return Sent::Split,
                Verdict::RetryAfter(delay) => {
                    if !self.sleep(delay, true) {
                        self.fail_for_now(&error);
                        return Sent::Retained;
                    }
                    Stats::add(&self.shared.stats.retries, 1);
                }
                Verdict::ServerFault => return Sent::ServerFault(error),
                Verdict::KeepForLater => {
                    self.fail_for_now(&error);
                    return Sent::Retained;
                }
                Verdict::TakenUnread => {
                    let s = &self.shared;
                    Stats::add(self.taken(), n);
                    Stats::add(&s.stats.batches, 1);
                    Stats::add(&s.stats.bytes_sent, body.len() as u64);
                    s.report(&error);
                    return Sent::Done;
                }
                Verdict::Refused => {
                    Stats::add(self.refused(), n);
                    self.shared.report(&error);
                    return Sent::Done;
                }
            }
        }
    }

    /// The request body for `pending[range]`.
    fn batch_body(&self, range: Range<usize>) -> Vec<u8> {
        let entries = &self.pending.entries()[range];
        let size = entries.iter().map(wire_bytes).sum();
        let jsons = entries.iter().map(|e| &e.json[..]);
        let config = &self.shared.config;
        config
            .protocol
            .batch_body(jsons, size, &config.resource_attributes)
    }

    /// Waits, and counts the wait, until the pacer lets the next request go. Returns
    /// false when a close deadline cut the wait short.
    fn wait_for_pacer(&mut self) -> bool {
        let now = self.io.now();
        let Some(at) = self.pacer.ready_at(now).filter(|&at| at > now) else {
            return true;
        };
        Stats::add(&self.shared.stats.paced_waits, 1);
        let slept = self.sleep(at - now, false);
        let waited = self.io.now().saturating_duration_since(now).as_millis() as u64;
        Stats::add(&self.shared.stats.paced_wait_ms, waited);
        slept
    }

    /// The next request's timeout: the configured one, cut to what is left before
    /// `deadline`, or before the close deadline when there is none. `None`: no time left.
    fn request_timeout(&self, deadline: Option<Instant>) -> Option<Duration> {
        let s = &self.shared;
        let deadline = deadline.or_else(|| s.deadline());
        let timeout = deadline.map_or(s.config.timeout, |d| {
            s.config
                .timeout
                .min(d.saturating_duration_since(self.io.now()))
        });
        (!timeout.is_zero()).then_some(timeout)
    }

    /// Posts `body` once, and tells the pacer of the request and of whether the server's
    /// limiter counted it.
    fn post(
        &mut self,
        body: &[u8],
        n: u64,
        timeout: Duration,
        backlogged: bool,
    ) -> Result<Reply, Error> {
        let start = self.io.now();
        self.pacer.on_send(start);
        let result = self.io.post(body, n, timeout);
        match &result {
            // Not counted by the server's limiter: refused by it, or never reached it
            // (a gateway's 502-504, a network error).
            Err(
                Error::Http {
                    status: 429 | 502..=504,
                    ..
                }
                | Error::Network(_),
            ) => {}
            other => self.pacer.on_charged(start, other.is_ok(), backlogged),
        }
        result
    }

    /// Counts a request of `n` entries and `bytes` bytes the server answered, reports
    /// what it rejected, and tells the owner what it took.
    fn record_reply(&mut self, reply: &Reply, n: u64, bytes: usize) {
        if self.schedule.answered() {
            self.spool_server_back();
        }
        let s = &self.shared;
        Stats::add(self.taken(), reply.accepted);
        Stats::add(self.pending.origin().rejected(&s.stats), reply.rejected);
        Stats::add(&s.stats.batches, 1);
        Stats::add(&s.stats.bytes_sent, bytes as u64);
        s.replies.lock().add(reply);
        if reply.rejected > 0 {
            s.report(&Error::Rejected {
                rejected: reply.rejected,
                total: n,
                reasons: reply.errors.join("; "),
            });
        }
        if reply.accepted > 0 {
            s.events.delivered(reply.accepted);
        }
    }

    /// How many requests the server has taken (answered 2xx) in all.
    fn requests_taken(&self) -> u64 {
        self.shared.stats.batches.load(Ordering::Acquire)
    }

    /// The counter of entries the server took.
    fn taken(&self) -> &AtomicU64 {
        self.pending.origin().taken(&self.shared.stats)
    }

    /// The counter of entries given up on for good.
    fn refused(&self) -> &AtomicU64 {
        self.pending.origin().failed(&self.shared.stats)
    }

    /// Counts a 429 and tells the pacer. Without a model of the server's limit, holds
    /// the batch as long as the server asks, and returns true.
    fn record_rate_limit(&mut self, retry_after: Option<Duration>) -> bool {
        let wait = self.pacer.on_limited(self.io.now(), retry_after);
        let stats = &self.shared.stats;
        Stats::add(&stats.rate_limited_waits, 1);
        Stats::add(
            &stats.rate_limited_wait_ms,
            retry_after.unwrap_or(wait).as_millis() as u64,
        );
        if self.paced {
            return false;
        }
        self.schedule.hold(self.io.now() + wait);
        true
    }

    /// A delivery failed and is given up on for this cycle: the next waits for a tick or
    /// a flush, and past any `Retry-After` the server sent. Reports the error.
    fn fail_for_now(&mut self, error: &Error) {
        if let Some(ra) = error.retry_after() {
            self.schedule.hold(self.io.now() + ra);
        }
        self.schedule.failed();
        self.shared.report(error);
    }

    /// Sleeps `d` unless a close deadline falls before its end; returns whether it slept.
    /// While waiting, what memory cannot keep is written to the spool every second; with
    /// `retrying` (a failed request waits for its retry), what is queued behind it too.
    pub(super) fn sleep(&mut self, d: Duration, retrying: bool) -> bool {
        let end = self.io.now() + d;
        // Pushes need not wake us while we wait.
        self.shared.wake_pending.store(true, Ordering::Release);
        loop {
            let deadline = self.shared.deadline();
            // Past the close deadline, or dropped without a close: no more waiting.
            if deadline.is_some_and(|dl| end > dl)
                || (deadline.is_none() && !self.shared.lifecycle.is_open())
            {
                return false;
            }
            let now = self.io.now();
            if now >= end {
                return true;
            }
            self.io.park_until(now + (end - now).min(self.wait_slice()));
            self.spill_while_waiting(retrying);
        }
    }
}

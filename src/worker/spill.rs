//! The flush thread's side of the spool: it writes down what memory cannot keep (what the
//! full buffer set aside, the backlog while the server fails, what is left at close) and
//! sends it again once the server takes requests, one request between fresh ones, paced
//! by the same budget. A disk fault is reported once and leaves memory to do the work
//! until the spool has rested.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Outcome, Worker, SOFT_MAX_REQUEST_BYTES};
use crate::buffer::Entry;
use crate::errors::Error;
use crate::spool::{Spool, SpoolError};
use crate::stats::Stats;

/// While the server fails, what waits in memory is written down this often, so that a
/// crash in an outage loses at most this much.
const SPILL_EVERY: Duration = Duration::from_secs(1);
/// After a disk fault the spool rests this long before it is tried again.
const SPOOL_REST: Duration = Duration::from_secs(60);
/// At close, the time kept back from sending to write down what is left.
const CLOSE_SPILL_RESERVE: Duration = Duration::from_millis(100);

/// The spool and its state of health.
#[derive(Default)]
pub(super) struct SpoolSlot {
    /// `None` without `spool_dir`, or while the spool rests after a disk fault.
    open: Option<Spool>,
    /// After a disk fault: when to open the spool again.
    rests_until: Option<Instant>,
    /// Whether the current spool trouble was reported (once per run of trouble).
    fault_reported: bool,
}

impl Worker {
    /// Opens the spool, if there is to be one and it is not resting after a fault.
    pub(super) fn open_spool(&mut self) {
        let Some(config) = self.shared.config.spool.clone() else {
            return;
        };
        if self.spool.open.is_some() || self.spool.rests_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        match Spool::open(&config.dir, &config.destination, config.max_bytes) {
            Ok(spool) => {
                self.spool.open = Some(spool);
                self.spool.rests_until = None;
                self.note_spool_bytes();
            }
            Err(e) => self.spool_fault(&SpoolError::Io(e)),
        }
    }

    /// Once a loop: writes down what waits for it, and looks for other owners' files.
    pub(super) fn tend_spool(&mut self, now: Instant) {
        if self.shared.config.spool.is_none() {
            return;
        }
        self.open_spool();
        self.spill_evicted();
        if self.failing {
            self.spill_backlog();
        }
        if let Some(spool) = self.spool.open.as_mut() {
            if let Err(e) = spool.scan_if_due(now) {
                self.spool_fault(&SpoolError::Io(e));
            }
            self.note_spool_bytes();
        }
    }

    /// When the loop must wake to write down the backlog of a failing server.
    pub(super) fn next_spill(&self, now: Instant) -> Option<Instant> {
        (self.failing && self.spool.open.is_some()).then(|| now + SPILL_EVERY)
    }

    /// Whether entries wait on disk for this process to send.
    pub(super) fn spool_backlog(&self) -> bool {
        self.spool.open.as_ref().is_some_and(Spool::has_backlog)
    }

    /// The close deadline less the time kept for writing to the spool.
    pub(super) fn sending_deadline(&self, deadline: Instant) -> Instant {
        if self.spool.open.is_none() {
            return deadline;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        deadline
            .checked_sub(CLOSE_SPILL_RESERVE.min(left / 4))
            .unwrap_or(deadline)
    }

    /// Writes down what the full buffer set aside; without a spool to take it, it is
    /// dropped and counted as overflow.
    pub(super) fn spill_evicted(&mut self) {
        self.shared.spill_pending.store(false, Ordering::Release);
        while self.shared.buffer.has_evicted() {
            let entries = self.shared.buffer.take_evicted(SOFT_MAX_REQUEST_BYTES);
            if !self.spool_write(&entries) {
                self.drop_evicted(entries.len());
            }
        }
    }

    /// Writes down the entries held and queued, a request's worth at a time; what the
    /// spool does not take stays in memory.
    pub(super) fn spill_backlog(&mut self) {
        while self.spool.open.is_some() {
            self.fill_pending();
            // What the full buffer pushed out meanwhile is older than some of what was
            // just taken from its front: both are written in the order they were logged.
            let aside = self.shared.buffer.take_evicted(SOFT_MAX_REQUEST_BYTES);
            if self.pending.is_empty() && aside.is_empty() {
                return;
            }
            let mut chunk = std::mem::take(&mut self.pending);
            let aside_seqs: Vec<u64> = aside.iter().map(|e| e.seq).collect();
            chunk.extend(aside);
            chunk.sort_unstable_by_key(|e| e.seq);
            if !self.spool_write(&chunk) {
                let (aside, held): (Vec<Entry>, Vec<Entry>) =
                    chunk.into_iter().partition(|e| aside_seqs.contains(&e.seq));
                self.pending = held;
                self.drop_evicted(aside.len());
                return;
            }
            self.clear_pending();
        }
    }

    /// Counts entries the full buffer pushed out, that the spool could not take.
    fn drop_evicted(&self, n: usize) {
        let n = n as u64;
        Stats::add(&self.shared.stats.dropped_overflow, n);
        Stats::add(&self.shared.overflowed, n);
    }

    /// Appends `entries` to the spool and counts them; false when it could not.
    fn spool_write(&mut self, entries: &[Entry]) -> bool {
        let Some(spool) = self.spool.open.as_mut() else {
            return false;
        };
        match spool.write(entries) {
            Ok(dropped) => {
                let stats = &self.shared.stats;
                Stats::add(&stats.spooled, entries.len() as u64);
                Stats::add(&stats.dropped_spool_full, dropped);
                self.spool.fault_reported = false;
                self.note_spool_bytes();
                true
            }
            Err(e) => {
                self.spool_fault(&e);
                false
            }
        }
    }

    /// Sends one request's worth from the spool, oldest first, and acknowledges what
    /// the server took, so that neither this process nor a later one sends it again.
    pub(super) fn replay_one(&mut self) {
        let config = &self.shared.config;
        let (max_entries, max_bytes) = (config.max_request_entries, SOFT_MAX_REQUEST_BYTES);
        let Some(spool) = self.spool.open.as_mut() else {
            return;
        };
        let batch = match spool.next_batch(max_entries, max_bytes) {
            Ok(Some(batch)) => batch,
            Ok(None) => return,
            Err(e) => return self.spool_fault(&SpoolError::Io(e)),
        };
        self.pending_bytes = batch.entries.iter().map(|e| e.json.len() + 1).sum();
        self.pending = batch.entries;
        self.replaying = true;
        let outcome = self.deliver(None);
        // What was not resolved is read again later, from the first of it on.
        let taken_to = match outcome {
            Outcome::Done => batch.end,
            Outcome::Retained => self.pending.first().map_or(batch.end, |e| e.seq as usize),
        };
        self.clear_pending();
        self.replaying = false;
        if let Some(spool) = self.spool.open.as_mut() {
            if let Err(e) = spool.acknowledge(taken_to) {
                self.spool_fault(&SpoolError::Io(e));
            }
        }
        self.note_spool_bytes();
    }

    /// Counts a spool problem and reports the first of a run. A disk fault sets the
    /// spool aside for `SPOOL_REST`; a full spool stays, as room comes back as it drains.
    fn spool_fault(&mut self, error: &SpoolError) {
        let message = match error {
            SpoolError::Full => "is full (max_spool_bytes): entries are kept in memory, \
                or dropped and counted, until it drains"
                .to_owned(),
            SpoolError::Io(e) => {
                Stats::add(&self.shared.stats.spool_errors, 1);
                if let Some(mut spool) = self.spool.open.take() {
                    let _ = spool.close();
                }
                self.spool.rests_until = Some(Instant::now() + SPOOL_REST);
                let dir = self.shared.config.spool.as_ref().map(|c| c.dir.clone());
                format!(
                    "directory {dir:?} cannot be used ({e}): entries are kept in memory, \
                     and the spool is tried again in {} s",
                    SPOOL_REST.as_secs()
                )
            }
        };
        if !std::mem::replace(&mut self.spool.fault_reported, true) {
            self.shared.report(&Error::Spool(message));
        }
    }

    /// Publishes the spool's size and the damage met while reading it.
    fn note_spool_bytes(&mut self) {
        let Some(spool) = self.spool.open.as_mut() else {
            return;
        };
        let stats = &self.shared.stats;
        Stats::add(&stats.spool_corrupt, spool.take_damaged());
        stats.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
    }

    /// Makes what was written durable, and gives the rest to the next process.
    pub(super) fn close_spool(&mut self) {
        self.note_spool_bytes();
        if let Some(mut spool) = self.spool.open.take() {
            if let Err(e) = spool.close() {
                self.spool_fault(&SpoolError::Io(e));
            }
        }
    }
}

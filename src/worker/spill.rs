//! The flush thread's side of the spool: it writes down what memory cannot keep (what the
//! full buffer set aside, the backlog while the server fails, what is left at close) and
//! sends it again once the server takes requests, one request between fresh ones, paced
//! by the same budget. A disk fault is reported once and leaves memory to do the work
//! until the spool has rested.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::delivery::Outcome;
use super::pending::{Origin, Pending};
use super::triage::Evidence;
use super::{Worker, SOFT_MAX_REQUEST_BYTES};
use crate::buffer::Entry;
use crate::errors::Error;
use crate::spool::{Batch, Spool, SpoolError, WriteError};
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
    /// The spool trouble reported last: each kind once per run of trouble.
    reported: Option<Trouble>,
    /// Entries of a replayed request the server did not take, kept for the next try,
    /// with what the tries so far showed of them.
    held: Option<(Batch, Evidence)>,
}

/// The kinds of spool trouble, each reported once per run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// `max_spool_bytes` reached: over once the outage that filled it is.
    Full,
    /// The directory removed or replaced under us, and made again.
    Gone,
    /// The disk failed: over once a write succeeds after the rest.
    Disk,
}

impl Worker {
    /// Opens the spool, if there is to be one and it is not resting after a fault.
    pub(super) fn open_spool(&mut self) {
        let Some(config) = self.shared.config.spool.clone() else {
            return;
        };
        if self.spool.open.is_some() || self.spool.rests_until.is_some_and(|t| self.io.now() < t) {
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
        // Not when the tick's probe of the failing server is due: what was logged lately
        // is that probe (a batch read back from the spool cannot be one when the server
        // refuses its own entries), and goes to disk if the probe fails.
        if self.schedule.failing() && !self.schedule.probe_due(now) {
            self.spill_backlog();
        }
        if let Some(spool) = self.spool.open.as_mut() {
            match spool.scan_if_due(now) {
                Err(SpoolError::Gone(how)) => {
                    self.spool_gone(how);
                }
                Err(e) => self.spool_fault(&e),
                Ok(()) => {}
            }
            self.note_spool_bytes();
        }
    }

    /// When the loop must wake to write down the backlog of a failing server.
    pub(super) fn next_spill(&self, now: Instant) -> Option<Instant> {
        (self.schedule.failing() && self.spool.open.is_some()).then(|| now + SPILL_EVERY)
    }

    /// Whether entries wait on disk for this process to send.
    pub(super) fn spool_backlog(&self) -> bool {
        self.spool
            .open
            .as_ref()
            .is_some_and(|s| self.spool.held.is_some() || s.has_backlog())
    }

    /// Between the slices of a wait: writes down what the full buffer set aside, and,
    /// while a failed request waits for its retry, what is queued behind it.
    pub(super) fn spill_while_waiting(&mut self, retrying: bool) {
        if self.spool.open.is_none() {
            return;
        }
        self.spill_evicted();
        if retrying {
            self.spill_queued();
        }
    }

    /// How long a wait may last before `spill_while_waiting`.
    pub(super) fn wait_slice(&self) -> Duration {
        if self.spool.open.is_some() {
            SPILL_EVERY
        } else {
            Duration::MAX
        }
    }

    /// The close deadline less the time kept for writing to the spool.
    pub(super) fn sending_deadline(&self, deadline: Instant) -> Instant {
        if self.spool.open.is_none() {
            return deadline;
        }
        let left = deadline.saturating_duration_since(self.io.now());
        deadline
            .checked_sub(CLOSE_SPILL_RESERVE.min(left / 4))
            .unwrap_or(deadline)
    }

    /// Writes down what the full buffer set aside; without a spool to take it, it is
    /// dropped and counted as overflow.
    pub(super) fn spill_evicted(&mut self) {
        self.shared.spill_pending.store(false, Ordering::Release);
        while self.shared.buffer.has_evicted() {
            let mut entries = self.shared.buffer.take_evicted(SOFT_MAX_REQUEST_BYTES);
            // Set aside least important first: written in the order they were logged.
            entries.sort_unstable_by_key(|e| e.seq);
            let written = self.spool_write(&entries);
            self.drop_evicted(&entries[written..]);
        }
    }

    /// Writes down the entries held and queued, a request's worth at a time; what the
    /// spool does not take stays in memory.
    pub(super) fn spill_backlog(&mut self) {
        while self.spool.open.is_some() {
            self.fill_pending();
            let chunk = self.pending.take();
            match self.spill_with_evicted(chunk) {
                None => return self.note_inflight(),
                Some(rest) if rest.is_empty() => self.note_inflight(),
                Some(rest) => {
                    self.pending.put(rest, Origin::Buffer, Evidence::default());
                    return self.note_inflight();
                }
            }
        }
    }

    /// While a failed request waits for its retry: writes down what is queued behind it
    /// (not the request itself, still in flight), so that a crash loses at most a second.
    fn spill_queued(&mut self) {
        while self.spool.open.is_some() {
            let mut queued = Pending::new(self.shared.config.max_request_entries);
            queued.fill(&self.shared.buffer);
            match self.spill_with_evicted(queued.take()) {
                None => return,
                Some(rest) if rest.is_empty() => {}
                // The disk failed under them: with the request in flight there is no
                // place in memory to put them back.
                Some(rest) => return self.drop_evicted(&rest),
            }
        }
    }

    /// Writes `chunk` with what the full buffer pushed out meanwhile, which is older than
    /// some of what was just taken from its front: both in the order they were logged.
    /// Returns what of `chunk` the spool did not take (empty: all of it), and drops and
    /// counts what of the pushed out it did not; `None` when there was nothing to write.
    fn spill_with_evicted(&mut self, mut chunk: Vec<Entry>) -> Option<Vec<Entry>> {
        let aside = self.shared.buffer.take_evicted(SOFT_MAX_REQUEST_BYTES);
        if chunk.is_empty() && aside.is_empty() {
            return None;
        }
        let aside_seqs: Vec<u64> = aside.iter().map(|e| e.seq).collect();
        chunk.extend(aside);
        chunk.sort_unstable_by_key(|e| e.seq);
        let written = self.spool_write(&chunk);
        let (aside, rest): (Vec<Entry>, Vec<Entry>) = chunk
            .drain(written..)
            .partition(|e| aside_seqs.contains(&e.seq));
        self.drop_evicted(&aside);
        Some(rest)
    }

    /// Counts entries the full buffer pushed out, that the spool could not take.
    fn drop_evicted(&self, dropped: &[Entry]) {
        let stats = &self.shared.stats;
        for e in dropped {
            Stats::add(&stats.dropped_by_level[e.level as usize], 1);
        }
        let n = dropped.len() as u64;
        Stats::add(&stats.dropped_overflow, n);
        Stats::add(&self.shared.overflowed, n);
    }

    /// Appends `entries` to the spool and counts them; returns how many of the first
    /// ones are on disk (all, or fewer after a fault). A directory removed or replaced
    /// under us is made again, and the entries written there.
    fn spool_write(&mut self, entries: &[Entry]) -> usize {
        let Some(spool) = self.spool.open.as_mut() else {
            return 0;
        };
        let mut result = spool.write(entries);
        if let Err(WriteError {
            error: SpoolError::Gone(how),
            ..
        }) = result
        {
            result = match self.spool_gone(how) {
                Some(spool) => spool.write(entries),
                None => return 0,
            };
        }
        let written = result
            .as_ref()
            .map_or_else(|e| e.written, |()| entries.len());
        Stats::add(&self.shared.stats.spooled, written as u64);
        self.note_spool_bytes();
        match result {
            Ok(()) => self.spool_healthy(),
            Err(e) => self.spool_fault(&e.error),
        }
        written
    }

    /// The spool's directory was removed or replaced (`how`): what it held is counted
    /// lost (a damaged stretch per file), and the directory is made again, with a lock of
    /// our own, at once. Returns the new spool; `None` when it could not be made (memory
    /// then does the work while the spool rests, as after any disk fault).
    fn spool_gone(&mut self, how: &'static str) -> Option<&mut Spool> {
        let lost = self.spool.open.take().map_or(0, Spool::abandon);
        let stats = &self.shared.stats;
        Stats::add(&stats.spool_errors, 1);
        Stats::add(&stats.spool_corrupt, lost);
        let config = self.shared.config.spool.clone()?;
        // A replayed batch held for its retry stays: it is in memory, and goes first.
        let message = format!(
            "directory {} {how} while in use: {lost} of its files were lost with it; \
             it is made again, and what comes next is written there",
            config.dir.display()
        );
        self.report_spool_trouble(Trouble::Gone, message);
        match Spool::open(&config.dir, &config.destination, config.max_bytes) {
            Ok(spool) => self.spool.open = Some(spool),
            Err(e) => self.spool_fault(&SpoolError::Io(e)),
        }
        self.spool.open.as_mut()
    }

    /// Sends one request's worth from the spool, oldest first, and acknowledges what
    /// the server took, so that neither this process nor a later one sends it again.
    pub(super) fn replay_one(&mut self) {
        let config = &self.shared.config;
        let (max_entries, max_bytes) = (config.max_request_entries, SOFT_MAX_REQUEST_BYTES);
        let Some(spool) = self.spool.open.as_mut() else {
            return;
        };
        // What a failed replay left unresolved goes first, from memory: read again from
        // disk, the entries after it that the server took would go twice.
        let (batch, evidence) = match self.spool.held.take() {
            Some(held) => held,
            None => match spool.next_batch(max_entries, max_bytes) {
                Ok(Some(batch)) => (batch, Evidence::default()),
                Ok(None) => return,
                Err(e) => return self.spool_fault(&SpoolError::Io(e)),
            },
        };
        self.pending.put(batch.entries, Origin::Spool, evidence);
        let outcome = self.deliver(None);
        let evidence = self.pending.evidence();
        let left = self.pending.take();
        match outcome {
            Outcome::Done => {
                let acknowledged = self.spool.open.as_mut().map(|s| s.acknowledge(batch.end));
                if let Some(Err(e)) = acknowledged {
                    self.spool_fault(&SpoolError::Io(e));
                }
            }
            Outcome::Retained | Outcome::Undecided => {
                // Up to the first entry still unresolved, everything was taken or failed:
                // a process that reads this segment after us starts there, instead of
                // sending those again.
                let resolved_to = left.first().map(|e| e.seq as usize);
                let acknowledged = resolved_to
                    .and_then(|end| self.spool.open.as_mut().map(|s| s.acknowledge(end)));
                if let Some(Err(e)) = acknowledged {
                    self.spool_fault(&SpoolError::Io(e));
                }
                let batch = Batch {
                    entries: left,
                    end: batch.end,
                };
                self.spool.held = Some((batch, evidence));
            }
        }
        self.note_spool_bytes();
    }

    /// Counts a spool problem and reports the first of a run. A disk fault sets the
    /// spool aside for `SPOOL_REST`; a full spool stays, as room comes back as it drains.
    fn spool_fault(&mut self, error: &SpoolError) {
        let (trouble, message) = match error {
            SpoolError::Full => (
                Trouble::Full,
                "is full (max_spool_bytes): entries are kept in memory, or dropped and \
                 counted, until it drains"
                    .to_owned(),
            ),
            SpoolError::Io(e) => (
                Trouble::Disk,
                self.set_spool_aside(&format!("cannot be used ({e})")),
            ),
            SpoolError::Gone(how) => (Trouble::Disk, self.set_spool_aside(&format!("{how} again"))),
        };
        self.report_spool_trouble(trouble, message);
    }

    /// After a disk fault: closes the spool for `SPOOL_REST`, counts the fault, and says
    /// what happened (`what`, of the directory).
    fn set_spool_aside(&mut self, what: &str) -> String {
        Stats::add(&self.shared.stats.spool_errors, 1);
        // Still on disk, unacknowledged: sent by whoever adopts the files.
        self.spool.held = None;
        if let Some(mut spool) = self.spool.open.take() {
            let _ = spool.close();
        }
        self.spool.rests_until = Some(self.io.now() + SPOOL_REST);
        let dir = self.shared.config.spool.as_ref().map(|c| c.dir.display());
        let dir = dir.map(|d| d.to_string()).unwrap_or_default();
        format!(
            "directory {dir} {what}: entries are kept in memory, and the spool is tried \
             again in {} s",
            SPOOL_REST.as_secs()
        )
    }

    fn report_spool_trouble(&mut self, trouble: Trouble, message: String) {
        if self.spool.reported != Some(trouble) {
            self.spool.reported = Some(trouble);
            self.shared.report(&Error::Spool(message));
        }
    }

    /// A write went through: the run of trouble is over, but for a full spool, which is
    /// over with the outage that filled it (`spool_server_back`), not at each write that
    /// finds room as the oldest go.
    fn spool_healthy(&mut self) {
        if self.spool.reported != Some(Trouble::Full) {
            self.spool.reported = None;
        }
    }

    /// The server takes requests again after failing: a spool resting after a disk fault
    /// is tried at once, so that what it holds is replayed now, not when the rest ends.
    pub(super) fn spool_server_back(&mut self) {
        if self.spool.open.is_none() {
            self.spool.rests_until = None;
        }
        if self.spool.reported == Some(Trouble::Full) {
            self.spool.reported = None;
        }
    }

    /// Publishes the spool's size and the damage met while reading it.
    fn note_spool_bytes(&mut self) {
        let Some(spool) = self.spool.open.as_mut() else {
            return;
        };
        let stats = &self.shared.stats;
        Stats::add(&stats.spool_corrupt, spool.take_damaged());
        Stats::add(&stats.dropped_spool_full, spool.take_dropped());
        stats.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
    }

    /// Makes what was written durable, and gives the rest to the next process.
    pub(super) fn close_spool(&mut self) {
        self.note_spool_bytes();
        if let Some(mut spool) = self.spool.open.take() {
            // A replayed batch held for its retry is written down again, and its place in
            // the segment it came from acknowledged: the next process reads each of its
            // entries once, and none of those the server took out of order meanwhile.
            // Not counted as spooled again: they were, when first written.
            if let Some((held, _)) = self.spool.held.take() {
                let rewritten = spool.write(&held.entries).and_then(|()| {
                    spool.acknowledge(held.end).map_err(|e| WriteError {
                        written: held.entries.len(),
                        error: SpoolError::Io(e),
                    })
                });
                if let Err(e) = rewritten {
                    self.spool_fault(&e.error);
                }
            }
            if let Err(e) = spool.close() {
                self.spool_fault(&SpoolError::Io(e));
            }
        }
    }
}

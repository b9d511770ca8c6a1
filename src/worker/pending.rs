//! What waits to be sent: the batch the thread holds, oldest first, with its size on the
//! wire and where it came from (this process's buffer, or the spool). It is kept across
//! cycles while the server fails, and cut into requests' worths.

use std::ops::Range;
use std::sync::atomic::AtomicU64;

use super::triage::Evidence;
use super::SOFT_MAX_REQUEST_BYTES;
use crate::buffer::{Buffer, Entry};
use crate::stats::Stats;

/// Where a batch's entries come from, which says what their outcomes count as.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Origin {
    /// Logged in this process: `sent`, `failed`, `rejected_by_server`.
    Buffer,
    /// Read back from the spool: `replayed`, or `replay_failed` for both refusals.
    Spool,
}

impl Origin {
    /// The counter of entries the server took.
    pub(super) fn taken(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Origin::Buffer => &stats.sent,
            Origin::Spool => &stats.replayed,
        }
    }

    /// The counter of entries given up on for good: the server failed or refused them
    /// alone.
    pub(super) fn failed(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Origin::Buffer => &stats.failed,
            Origin::Spool => &stats.replay_failed,
        }
    }

    /// The counter of entries the server rejected one by one in a reply it answered 200.
    pub(super) fn rejected(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Origin::Buffer => &stats.rejected_by_server,
            Origin::Spool => &stats.replay_failed,
        }
    }
}

/// An entry's bytes in a request body: its JSON and a separator.
pub(super) fn wire_bytes(e: &Entry) -> usize {
    e.json.len() + 1
}

/// The batch being delivered.
pub(super) struct Pending {
    entries: Vec<Entry>,
    /// `wire_bytes` of `entries`.
    bytes: usize,
    origin: Origin,
    /// What earlier cycles showed of the entries at its front, failed whole.
    evidence: Evidence,
    /// A request's worth: at most this many entries (and about `SOFT_MAX_REQUEST_BYTES`).
    max_entries: usize,
}

impl Pending {
    pub(super) fn new(max_entries: usize) -> Pending {
        Pending {
            entries: Vec::with_capacity(max_entries),
            bytes: 0,
            origin: Origin::Buffer,
            evidence: Evidence::default(),
            max_entries,
        }
    }

    pub(super) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn origin(&self) -> Origin {
        self.origin
    }

    pub(super) fn evidence(&self) -> Evidence {
        self.evidence
    }

    /// The batch failed whole, nothing of it taken, when the server had taken `taken`
    /// requests in all.
    pub(super) fn failed_whole(&mut self, taken: u64) {
        self.evidence.failed_whole(taken);
    }

    /// The oldest entry logged in this process that it holds, which a `flush` waits for
    /// (the spool's were never in the buffer).
    pub(super) fn oldest_logged(&self) -> Option<u64> {
        match self.origin {
            Origin::Buffer => self.entries.first().map(|e| e.seq),
            Origin::Spool => None,
        }
    }

    /// Tops the batch up from `buffer` to a request's worth.
    pub(super) fn fill(&mut self, buffer: &Buffer) {
        self.pull(buffer, 0, 0);
    }

    /// Adds a request's worth from `buffer` behind what it holds; returns how many.
    pub(super) fn borrow_request(&mut self, buffer: &Buffer) -> usize {
        let before = self.entries.len();
        self.pull(buffer, before, self.bytes);
        self.entries.len() - before
    }

    /// Pops from `buffer` until the entries past the first `len` (of `bytes`) make a
    /// request's worth, or the buffer is empty.
    fn pull(&mut self, buffer: &Buffer, len: usize, bytes: usize) {
        debug_assert_eq!(
            self.origin,
            Origin::Buffer,
            "the spool's are not mixed with ours"
        );
        while !self.fills_a_request(len, bytes) {
            let Some(e) = buffer.pop() else {
                break;
            };
            self.bytes += wire_bytes(&e);
            self.entries.push(e);
        }
    }

    fn fills_a_request(&self, len: usize, bytes: usize) -> bool {
        self.entries.len() - len >= self.max_entries || self.bytes - bytes >= SOFT_MAX_REQUEST_BYTES
    }

    /// The batch cut into consecutive requests' worths: more than one only after
    /// `borrow_request`.
    pub(super) fn parts(&self) -> Vec<Range<usize>> {
        let mut parts = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, e) in self.entries.iter().enumerate() {
            if i > start && (i - start >= self.max_entries || bytes >= SOFT_MAX_REQUEST_BYTES) {
                parts.push(start..i);
                (start, bytes) = (i, 0);
            }
            bytes += wire_bytes(e);
        }
        parts.push(start..self.entries.len());
        parts
    }

    /// Keeps only the entries not `resolved` (by index; past its end, unresolved).
    pub(super) fn keep_unresolved(&mut self, resolved: &[bool]) {
        let mut done = resolved.iter();
        let mut bytes = self.bytes;
        self.entries.retain(|e| {
            let gone = done.next().copied().unwrap_or(false);
            if gone {
                bytes -= wire_bytes(e);
            }
            !gone
        });
        self.bytes = bytes;
    }

    /// Hands the entries over, leaving the batch empty and ready for the buffer's.
    pub(super) fn take(&mut self) -> Vec<Entry> {
        let entries = std::mem::take(&mut self.entries);
        self.clear();
        entries
    }

    /// Holds `entries`, of `origin` and with what earlier cycles showed of them, in place
    /// of what it held (nothing, or what was just taken and is put back).
    pub(super) fn put(&mut self, entries: Vec<Entry>, origin: Origin, evidence: Evidence) {
        debug_assert!(self.entries.is_empty(), "a batch replaced while held");
        self.bytes = entries.iter().map(wire_bytes).sum();
        self.entries = entries;
        self.origin = origin;
        self.evidence = evidence;
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.origin = Origin::Buffer;
        self.evidence = Evidence::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::logwell::Level;

    fn entry(seq: u64, size: usize) -> Entry {
        Entry {
            seq,
            level: Level::Info,
            json: vec![b'x'; size].into(),
        }
    }

    fn buffer_of(count: u64, size: usize) -> Buffer {
        let buffer = Buffer::new(100_000, 1 << 30, false);
        for _ in 0..count {
            let _ = buffer.push(vec![b'x'; size], Level::Info);
        }
        buffer
    }

    #[test]
    fn a_request_s_worth_is_counted_in_entries_and_in_bytes() {
        let buffer = buffer_of(250, 10);
        let mut pending = Pending::new(100);
        pending.fill(&buffer);
        assert_eq!((pending.len(), pending.bytes()), (100, 1100));
        assert_eq!(pending.borrow_request(&buffer), 100);
        assert_eq!(pending.parts(), [0..100, 100..200]);

        // Entries of 100 KB: a request's worth is three of them (past 256 KiB).
        let buffer = buffer_of(10, 100_000);
        let mut pending = Pending::new(100);
        pending.fill(&buffer);
        assert_eq!(pending.len(), 3);
        assert_eq!(pending.borrow_request(&buffer), 3);
        assert_eq!(pending.parts(), [0..3, 3..6]);
    }

    #[test]
    fn what_is_resolved_leaves_with_its_bytes() {
        let buffer = buffer_of(5, 9);
        let mut pending = Pending::new(100);
        pending.fill(&buffer);
        pending.keep_unresolved(&[true, false, true]);
        let left: Vec<u64> = pending.entries().iter().map(|e| e.seq).collect();
        assert_eq!((left, pending.bytes()), (vec![1, 3, 4], 30));
        assert_eq!(pending.oldest_logged(), Some(1));
    }

    #[test]
    fn the_spool_s_entries_count_apart_and_are_not_waited_for_by_a_flush() {
        let mut pending = Pending::new(100);
        pending.put(
            vec![entry(7, 9), entry(8, 9)],
            Origin::Spool,
            Evidence::default(),
        );
        assert_eq!((pending.bytes(), pending.oldest_logged()), (20, None));
        let stats = Stats::default();
        Stats::add(pending.origin().taken(&stats), 2);
        assert_eq!(pending.take().len(), 2);
        assert_eq!(pending.origin(), Origin::Buffer);
        Stats::add(pending.origin().taken(&stats), 1);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.replayed, snapshot.sent), (2, 1));
    }
}

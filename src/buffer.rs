//! The bounded lock-free queue between the callers and the flush thread.
//!
//! Bounded by entry count and by bytes. When either bound is hit, the least important
//! entries go first: debug before info before warn before error before fatal, and within
//! a level the oldest. A storm of debug lines cannot push out the error that caused it.
//! With a spool they go aside instead (`Evicted`), for the flush thread to write down.
//!
//! One lock-free queue per level keeps each level's order; the flush thread, the one
//! consumer, merges them back into the order of pushes (`seq`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;
use parking_lot::Mutex;

use crate::protocol::logwell::Level;

/// One queue per level, least important first (`Level::ALL`).
pub const LEVELS: usize = Level::ALL.len();

/// An encoded entry with its place in the order of its source.
#[derive(Debug)]
pub struct Entry {
    /// Its place: the buffer's count of pushes; read back from the spool (`Origin::Spool`
    /// in the flush thread), where its frame starts in the segment, which is what a
    /// replay acknowledges up to.
    pub seq: u64,
    /// The buffer's queue it waits in. The spool does not keep it: read back, `Info`.
    pub level: Level,
    pub json: Box<[u8]>,
}

pub struct Buffer {
    queues: [SegQueue<Entry>; LEVELS],
    /// The consumer's next entry of each level, taken out of its queue to compare seqs.
    heads: Mutex<[Option<Entry>; LEVELS]>,
    len: AtomicUsize,
    max_entries: usize,
    bytes: AtomicUsize,
    max_bytes: usize,
    next_seq: AtomicU64,
    evicted: Option<Evicted>,
}

/// Entries pushed out of the full queue, kept for the spool instead of dropped; bounded
/// by bytes as the queue is, in case the disk cannot keep up.
struct Evicted {
    queue: SegQueue<Entry>,
    bytes: AtomicUsize,
    max_bytes: usize,
}

/// What a push did to older entries.
#[derive(Debug, Default)]
pub struct Pushed {
    /// Dropped for good, by level.
    pub dropped: [u64; LEVELS],
    /// Set aside for the spool.
    pub evicted: bool,
}

impl Pushed {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

impl Buffer {
    /// `keep_evicted`: a spool will write down what the full queue pushes out.
    pub fn new(max_entries: usize, max_bytes: usize, keep_evicted: bool) -> Buffer {
        Buffer {
            queues: std::array::from_fn(|_| SegQueue::new()),
            heads: Mutex::new(std::array::from_fn(|_| None)),
            len: AtomicUsize::new(0),
            max_entries: max_entries.max(1),
            bytes: AtomicUsize::new(0),
            max_bytes,
            next_seq: AtomicU64::new(0),
            evicted: keep_evicted.then(|| Evicted {
                queue: SegQueue::new(),
                bytes: AtomicUsize::new(0),
                max_bytes,
            }),
        }
    }

    /// Adds an entry, pushing out the least important when full. Never blocks: the
    /// queues and the counts are lock-free.
    pub fn push(&self, json: Vec<u8>, level: Level) -> Pushed {
        let size = json.len();
        let entry = Entry {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            level,
            json: json.into_boxed_slice(),
        };
        // Counted before it is visible: a pop must never take the count below zero.
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.len.fetch_add(1, Ordering::Relaxed);
        self.queues[level as usize].push(entry);
        let mut pushed = Pushed::default();
        // Keep at least the newest entry even if it alone is over the byte bound.
        while self.over_bounds() && self.len.load(Ordering::Relaxed) > 1 {
            let Some(old) = self.least_important() else {
                break; // the consumer holds what is left, and is sending it
            };
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(old.json.len(), Ordering::Relaxed);
            self.evict(old, &mut pushed);
        }
        pushed
    }

    /// The oldest entry of the least important level that has one. A level's oldest may
    /// wait in the consumer's `heads`: taken from there unless the consumer is at it.
    fn least_important(&self) -> Option<Entry> {
        let mut heads = self.heads.try_lock();
        for (level, queue) in self.queues.iter().enumerate() {
            if let Some(head) = heads.as_mut().and_then(|h| h[level].take()) {
                return Some(head);
            }
            if let Some(e) = queue.pop() {
                return Some(e);
            }
        }
        None
    }

    /// The `seq` the next entry will get: every entry pushed so far has a smaller one.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// The smallest `seq` still held (`u64::MAX`: none). Shedding by level resolves
    /// entries out of order: a flush waits for this, not only for a count.
    pub fn oldest_seq(&self) -> u64 {
        let mut heads = self.heads.lock();
        self.fill_heads(&mut heads);
        heads
            .iter()
            .flatten()
            .map(|e| e.seq)
            .min()
            .unwrap_or(u64::MAX)
    }

    fn fill_heads(&self, heads: &mut [Option<Entry>; LEVELS]) {
        for (head, queue) in heads.iter_mut().zip(&self.queues) {
            if head.is_none() {
                *head = queue.pop();
            }
        }
    }

    fn over_bounds(&self) -> bool {
        self.len.load(Ordering::Relaxed) > self.max_entries
            || self.bytes.load(Ordering::Relaxed) > self.max_bytes
    }

    fn evict(&self, old: Entry, pushed: &mut Pushed) {
        let Some(e) = &self.evicted else {
            pushed.dropped[old.level as usize] += 1;
            return;
        };
        let size = old.json.len();
        if e.bytes.fetch_add(size, Ordering::Relaxed) + size > e.max_bytes {
            e.bytes.fetch_sub(size, Ordering::Relaxed);
            pushed.dropped[old.level as usize] += 1;
            return;
        }
        e.queue.push(old);
        pushed.evicted = true;
    }

    /// Entries set aside for the spool, about `max_bytes` of them (one at least, when
    /// there is one), in the order they were set aside.
    pub fn take_evicted(&self, max_bytes: usize) -> Vec<Entry> {
        let mut taken = Vec::new();
        let Some(e) = &self.evicted else {
            return taken;
        };
        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(entry) = e.queue.pop() else { break };
            e.bytes.fetch_sub(entry.json.len(), Ordering::Relaxed);
            bytes += entry.json.len();
            taken.push(entry);
        }
        taken
    }

    pub fn has_evicted(&self) -> bool {
        self.evicted.as_ref().is_some_and(|e| !e.queue.is_empty())
    }

    /// The oldest entry of all levels. For the one consumer, the flush thread.
    pub fn pop(&self) -> Option<Entry> {
        let mut heads = self.heads.lock();
        self.fill_heads(&mut heads);
        let oldest = heads
            .iter()
            .enumerate()
            .filter_map(|(i, head)| head.as_ref().map(|e| (e.seq, i)))
            .min()?
            .1;
        let e = heads[oldest].take()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(e.json.len(), Ordering::Relaxed);
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_full_buffer_sheds_the_least_important_first_and_the_oldest_within_a_level() {
        let b = Buffer::new(4, 1 << 20, false);
        let levels = [
            Level::Error,
            Level::Debug,
            Level::Info,
            Level::Debug,
            Level::Warn,
        ];
        for (i, level) in levels.into_iter().enumerate() {
            b.push(vec![i as u8], level);
        }
        // Full at 4: the fifth pushed out the oldest debug entry (1).
        let pushed = b.push(vec![5], Level::Fatal);
        assert_eq!(
            pushed.dropped,
            [1, 0, 0, 0, 0],
            "the second debug entry (3) goes"
        );
        let pushed = b.push(vec![6], Level::Debug);
        assert_eq!(
            pushed.dropped,
            [1, 0, 0, 0, 0],
            "a new debug entry goes itself"
        );
        let left: Vec<u8> = std::iter::from_fn(|| b.pop()).map(|e| e.json[0]).collect();
        assert_eq!(
            left,
            vec![0, 2, 4, 5],
            "the rest, in the order they were pushed"
        );
    }

    #[test]
    fn what_the_consumer_holds_is_shed_in_turn_and_the_oldest_is_known() {
        let b = Buffer::new(3, 1 << 20, false);
        b.push(vec![0], Level::Debug);
        b.push(vec![1], Level::Error);
        b.push(vec![2], Level::Debug);
        // The consumer looks: each level's oldest now waits in its heads.
        assert_eq!(b.oldest_seq(), 0);
        // Full: the debug entry in the heads is the least important and the oldest.
        assert_eq!(b.push(vec![3], Level::Info).dropped, [1, 0, 0, 0, 0]);
        assert_eq!(b.oldest_seq(), 1);
        let left: Vec<u8> = std::iter::from_fn(|| b.pop()).map(|e| e.json[0]).collect();
        assert_eq!(left, vec![1, 2, 3]);
        assert_eq!((b.len(), b.bytes(), b.oldest_seq()), (0, 0, u64::MAX));
    }

    #[test]
    fn full_by_count_drops_oldest() {
        let b = Buffer::new(3, 1 << 20, false);
        for i in 0..5u8 {
            let pushed = b.push(vec![i], Level::Info);
            assert_eq!(pushed.dropped_total(), u64::from(i >= 3));
        }
        let left: Vec<u8> = std::iter::from_fn(|| b.pop()).map(|e| e.json[0]).collect();
        assert_eq!(left, vec![2, 3, 4]);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn full_by_bytes_drops_oldest_but_keeps_newest() {
        let b = Buffer::new(100, 1000, false);
        assert_eq!(b.push(vec![0; 600], Level::Info).dropped_total(), 0);
        assert_eq!(b.push(vec![1; 600], Level::Info).dropped_total(), 1);
        assert_eq!(b.len(), 1);
        assert_eq!(
            b.push(vec![2; 5000], Level::Info).dropped_total(),
            1,
            "an oversized entry still goes in"
        );
        assert_eq!(b.pop().map(|e| e.json[0]), Some(2));
    }

    #[test]
    fn with_a_spool_the_oldest_go_aside_within_a_byte_bound() {
        let b = Buffer::new(2, 1000, true);
        for i in 0..4u8 {
            let pushed = b.push(vec![i; 300], Level::Info);
            assert_eq!((pushed.dropped_total(), pushed.evicted), (0, i >= 2));
        }
        // Aside: 0 and 1 (600 bytes). 2 and 3 are queued; 4 pushes 2 aside (900 bytes);
        // 5 would push 3 past the bound, so 3 is dropped.
        assert!(b.push(vec![4; 300], Level::Info).evicted);
        assert_eq!(b.push(vec![5; 300], Level::Info).dropped_total(), 1);
        let aside: Vec<u8> = b
            .take_evicted(usize::MAX)
            .iter()
            .map(|e| e.json[0])
            .collect();
        assert_eq!(aside, vec![0, 1, 2]);
        assert!(!b.has_evicted());
        assert_eq!(b.take_evicted(usize::MAX).len(), 0);
    }

    #[test]
    fn concurrent_pushes_lose_nothing_below_capacity() {
        let b = Arc::new(Buffer::new(80_000, usize::MAX, false));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    (0..10_000)
                        .map(|_| b.push(vec![1], Level::Info).dropped_total())
                        .sum::<u64>()
                })
            })
            .collect();
        let dropped: u64 = threads.into_iter().map(|t| t.join().unwrap_or(1)).sum();
        assert_eq!(dropped, 0);
        assert_eq!(b.len(), 80_000);
        let mut seqs: Vec<u64> = std::iter::from_fn(|| b.pop()).map(|e| e.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 80_000);
    }
}

//! The bounded lock-free queue between the callers and the flush thread.
//!
//! Bounded by entry count (the ring's capacity) and by bytes. When either bound is hit
//! the oldest entries go, as in the official SDKs: fresh logs matter more in an outage.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

/// An encoded entry with its place in the order of pushes.
#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    pub json: Box<[u8]>,
}

pub struct Buffer {
    queue: ArrayQueue<Entry>,
    bytes: AtomicUsize,
    max_bytes: usize,
    next_seq: AtomicU64,
}

impl Buffer {
    pub fn new(max_entries: usize, max_bytes: usize) -> Buffer {
        Buffer {
            queue: ArrayQueue::new(max_entries.max(1)),
            bytes: AtomicUsize::new(0),
            max_bytes,
            next_seq: AtomicU64::new(0),
        }
    }

    /// Adds an entry and returns how many old entries were dropped to make room.
    /// Never blocks: the queue and the byte count are lock-free.
    pub fn push(&self, json: Vec<u8>) -> u64 {
        let size = json.len();
        let entry = Entry {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            json: json.into_boxed_slice(),
        };
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let mut dropped = 0;
        if let Some(old) = self.queue.force_push(entry) {
            self.bytes.fetch_sub(old.json.len(), Ordering::Relaxed);
            dropped += 1;
        }
        // Keep at least the newest entry even if it alone is over the byte bound.
        while self.bytes.load(Ordering::Relaxed) > self.max_bytes && self.queue.len() > 1 {
            match self.queue.pop() {
                Some(old) => {
                    self.bytes.fetch_sub(old.json.len(), Ordering::Relaxed);
                    dropped += 1;
                }
                None => break,
            }
        }
        dropped
    }

    pub fn pop(&self) -> Option<Entry> {
        let e = self.queue.pop()?;
        self.bytes.fetch_sub(e.json.len(), Ordering::Relaxed);
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
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
    fn full_by_count_drops_oldest() {
        let b = Buffer::new(3, 1 << 20);
        for i in 0..5u8 {
            let dropped = b.push(vec![i]);
            assert_eq!(dropped, u64::from(i >= 3));
        }
        let left: Vec<u8> = std::iter::from_fn(|| b.pop()).map(|e| e.json[0]).collect();
        assert_eq!(left, vec![2, 3, 4]);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn full_by_bytes_drops_oldest_but_keeps_newest() {
        let b = Buffer::new(100, 1000);
        assert_eq!(b.push(vec![0; 600]), 0);
        assert_eq!(b.push(vec![1; 600]), 1);
        assert_eq!(b.len(), 1);
        assert_eq!(b.push(vec![2; 5000]), 1, "an oversized entry still goes in");
        assert_eq!(b.pop().map(|e| e.json[0]), Some(2));
    }

    #[test]
    fn concurrent_pushes_lose_nothing_below_capacity() {
        let b = Arc::new(Buffer::new(80_000, usize::MAX));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || (0..10_000).map(|_| b.push(vec![1])).sum::<u64>())
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

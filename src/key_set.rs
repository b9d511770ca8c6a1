//! The metadata keys an entry has written so far. A new key is looked up by hash: a
//! record with 100 `extra` fields would otherwise compare each key with every one before
//! it, and that cost more than the rest of the record.

/// Keys are ranges of the entry's output (encoded keys, so equal names are equal bytes).
/// Up to `LINEAR` keys are compared one by one, hash first; past that an open-addressing
/// index finds them.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
    /// The index, empty until there are more than `LINEAR` keys: `EMPTY`, `TAKEN_BACK`,
    /// or a key's position in `keys` plus one. At most half full.
    slots: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Key {
    start: usize,
    end: usize,
    hash: u64,
}

const LINEAR: usize = 8;
const EMPTY: u32 = 0;
const TAKEN_BACK: u32 = u32::MAX;

impl KeySet {
    pub const fn new() -> KeySet {
        KeySet {
            keys: Vec::new(),
            slots: Vec::new(),
        }
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.slots.clear();
    }

    /// Adds the key at `out[start..end]`, unless an equal one is in: then returns false.
    pub fn insert(&mut self, out: &[u8], start: usize, end: usize) -> bool {
        let bytes = &out[start..end];
        let hash = hash(bytes);
        let is_it = |key: &Key| key.hash == hash && &out[key.start..key.end] == bytes;
        if self.slots.is_empty() {
            if self.keys.iter().any(is_it) {
                return false;
            }
        } else {
            let mut slot = self.first_slot(hash);
            loop {
                match self.slots[slot] {
                    EMPTY => break,
                    TAKEN_BACK => {}
                    taken => {
                        if is_it(&self.keys[taken as usize - 1]) {
                            return false;
                        }
                    }
                }
                slot = (slot + 1) & (self.slots.len() - 1);
            }
        }
        self.keys.push(Key { start, end, hash });
        if self.keys.len() > LINEAR {
            if 2 * self.keys.len() > self.slots.len() {
                self.rebuild();
            } else {
                self.index(self.keys.len() - 1);
            }
        }
        true
    }

    /// Takes back the key added last, and returns its range.
    pub fn pop(&mut self) -> Option<(usize, usize)> {
        let key = self.keys.pop()?;
        if !self.slots.is_empty() {
            let position = self.keys.len() as u32 + 1;
            let mut slot = self.first_slot(key.hash);
            while self.slots[slot] != EMPTY {
                if self.slots[slot] == position {
                    self.slots[slot] = TAKEN_BACK;
                    break;
                }
                slot = (slot + 1) & (self.slots.len() - 1);
            }
        }
        Some((key.start, key.end))
    }

    fn first_slot(&self, hash: u64) -> usize {
        // The high bits: the multiply in `hash` mixes into them best.
        (hash >> 32) as usize & (self.slots.len() - 1)
    }

    /// A new index of every key, four slots per key (a power of two).
    fn rebuild(&mut self) {
        let size = (4 * self.keys.len()).next_power_of_two();
        self.slots.clear();
        self.slots.resize(size, EMPTY);
        for position in 0..self.keys.len() {
            self.index(position);
        }
    }

    fn index(&mut self, position: usize) {
        let mut slot = self.first_slot(self.keys[position].hash);
        while self.slots[slot] != EMPTY && self.slots[slot] != TAKEN_BACK {
            slot = (slot + 1) & (self.slots.len() - 1);
        }
        self.slots[slot] = position as u32 + 1;
    }
}

/// A fast hash of a short byte string (`FxHash`'s mixing, eight bytes at a time): the
/// keys are the application's own, not an attacker's, and a collision costs only a
/// comparison.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        h = mix(h, u64::from_le_bytes(eight));
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    mix(h, u64::from_le_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `names` written one after another as `"name"`, and the range of each.
    fn written(names: &[String]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut out = Vec::new();
        let mut ranges = Vec::new();
        for name in names {
            let start = out.len();
            out.extend_from_slice(format!("\"{name}\"").as_bytes());
            ranges.push((start, out.len()));
        }
        (out, ranges)
    }

    #[test]
    fn refuses_a_repeated_key_before_and_after_the_index_starts() {
        for count in [1, LINEAR, LINEAR + 1, 100, 1000] {
            let mut names: Vec<String> = (0..count).map(|i| format!("field_{i}")).collect();
            names.extend(names.clone());
            let (out, ranges) = written(&names);
            let mut set = KeySet::default();
            let added: Vec<bool> = ranges
                .iter()
                .map(|&(s, e)| set.insert(&out, s, e))
                .collect();
            assert!(
                added[..count].iter().all(|&a| a),
                "{count} keys: a first one refused"
            );
            assert!(
                added[count..].iter().all(|&a| !a),
                "{count} keys: a repeat let in"
            );
        }
    }

    #[test]
    fn a_key_taken_back_can_be_written_again() {
        let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut with_repeat = names.clone();
        with_repeat.push("k39".into());
        let (out, ranges) = written(&with_repeat);
        let mut set = KeySet::default();
        for &(s, e) in &ranges[..40] {
            assert!(set.insert(&out, s, e));
        }
        assert_eq!(set.pop(), Some(ranges[39]));
        // The same name again, written elsewhere in the output: it is new now.
        assert!(set.insert(&out, ranges[40].0, ranges[40].1));
        assert!(!set.insert(&out, ranges[39].0, ranges[39].1));
        for &(s, e) in &ranges[..39] {
            assert!(!set.insert(&out, s, e));
        }
    }
}

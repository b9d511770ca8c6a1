//! The spool's file format. A segment is a header, then frames: each holds one encoded
//! entry with its length and a checksum, behind a mark that starts every frame. A torn
//! tail (the process died mid-write) or a flipped byte costs only the frames it touches:
//! the reader skips to the next mark that starts a sound frame.

/// Starts every segment; the `1` is the format's version.
pub const MAGIC: &[u8; 8] = b"LWSPOOL1";
/// The magic, then the offset (u64, little-endian) up to which the server has taken the
/// frames: replay resumes there after a crash.
pub const HEADER_BYTES: usize = 16;
/// Offset of the acknowledged offset within the header.
pub const ACKED_AT: u64 = 8;
/// Starts every frame. An entry is JSON, which writes control characters escaped, so the
/// mark's `\x01` never occurs inside one.
const MARK: &[u8; 4] = b"lwR\x01";
/// Mark, length (u32), CRC-32 of the length's bytes and the entry (u32); little-endian.
const FRAME_HEAD: usize = 12;
/// Entries are capped far below this (message and metadata limits); a longer length is
/// damage.
const MAX_ENTRY: usize = 256 << 20;

/// A new segment's header: nothing acknowledged yet.
pub fn header() -> [u8; HEADER_BYTES] {
    let mut h = [0; HEADER_BYTES];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&(HEADER_BYTES as u64).to_le_bytes());
    h
}

/// Where reading a segment's `data` resumes: its acknowledged offset, or its first frame
/// when the offset is damaged (it does not fall on a frame, and reading from the start
/// resends rather than skips). `None` when the header is not ours.
pub fn resume_at(data: &[u8]) -> Option<Resume> {
    let head = data.get(..HEADER_BYTES)?;
    if &head[..8] != MAGIC {
        return None;
    }
    let mut offset = [0; 8];
    offset.copy_from_slice(&head[8..]);
    let offset = usize::try_from(u64::from_le_bytes(offset)).unwrap_or(usize::MAX);
    Some(if offset <= data.len() && is_boundary(data, offset) {
        Resume::At(offset)
    } else {
        Resume::Damaged
    })
}

/// Where a segment's reading starts.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    At(usize),
    /// The acknowledged offset is damaged: read from the first frame.
    Damaged,
}

impl Resume {
    pub fn offset(&self) -> usize {
        match self {
            Resume::At(offset) => *offset,
            Resume::Damaged => HEADER_BYTES,
        }
    }
}

/// Appends `entry` to `out` as one frame.
pub fn push(out: &mut Vec<u8>, entry: &[u8]) {
    let len = u32::try_from(entry.len()).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(MARK);
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(len, entry).to_le_bytes());
    out.extend_from_slice(entry);
}

/// Bytes a frame of `entry_len` takes.
pub fn size(entry_len: usize) -> usize {
    FRAME_HEAD + entry_len
}

fn checksum(len: [u8; 4], entry: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(entry);
    h.finalize()
}

/// The entry of a sound frame at `pos`, and where the next frame starts.
fn frame_at(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let head = data.get(pos..pos.checked_add(FRAME_HEAD)?)?;
    if &head[..4] != MARK {
        return None;
    }
    let len = [head[4], head[5], head[6], head[7]];
    let n = u32::from_le_bytes(len) as usize;
    let sum = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let start = pos + FRAME_HEAD;
    let entry = data.get(start..start.checked_add(n).filter(|_| n <= MAX_ENTRY)?)?;
    (checksum(len, entry) == sum).then_some((entry, start + n))
}

/// Whether `pos` is where a frame may start: the first frame, a sound frame, or the end.
/// An acknowledged offset anywhere else is damage.
pub fn is_boundary(data: &[u8], pos: usize) -> bool {
    pos == HEADER_BYTES || pos == data.len() || frame_at(data, pos).is_some()
}

/// The frames of a segment from an offset on, skipping damage.
pub struct Frames<'a> {
    data: &'a [u8],
    pos: usize,
    /// Damaged stretches passed over so far: each is one or more frames lost.
    pub damaged: u64,
}

impl<'a> Frames<'a> {
    pub fn new(data: &'a [u8], from: usize) -> Frames<'a> {
        Frames {
            data,
            pos: from,
            damaged: 0,
        }
    }
}

/// A sound frame: where it starts, its entry, and where the next one starts.
pub struct Frame<'a> {
    pub start: usize,
    pub entry: &'a [u8],
    pub end: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        if self.pos >= self.data.len() {
            return None;
        }
        if let Some((entry, end)) = frame_at(self.data, self.pos) {
            let start = std::mem::replace(&mut self.pos, end);
            return Some(Frame { start, entry, end });
        }
        self.damaged += 1;
        // The next mark that starts a sound frame; none: the rest is a torn tail.
        let mut from = self.pos + 1;
        while let Some(i) = find(&self.data[from..], MARK) {
            let at = from + i;
            if let Some((entry, end)) = frame_at(self.data, at) {
                self.pos = end;
                return Some(Frame {
                    start: at,
                    entry,
                    end,
                });
            }
            from = at + 1;
        }
        self.pos = self.data.len();
        None
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(entries: &[&[u8]]) -> Vec<u8> {
        let mut data = header().to_vec();
        for e in entries {
            push(&mut data, e);
        }
        data
    }

    fn read(data: &[u8]) -> (Vec<Vec<u8>>, u64) {
        let from = resume_at(data).map_or(HEADER_BYTES, |r| r.offset());
        let mut frames = Frames::new(data, from);
        let entries = frames.by_ref().map(|f| f.entry.to_vec()).collect();
        (entries, frames.damaged)
    }

    const ENTRIES: [&[u8]; 4] = [b"{\"a\":1}", b"", b"{\"message\":\"lwR\"}", b"{\"b\":2}"];

    #[test]
    fn frames_read_back_as_written() {
        let (entries, damaged) = read(&segment(&ENTRIES));
        assert_eq!(entries, ENTRIES.map(<[u8]>::to_vec));
        assert_eq!(damaged, 0);
        assert_eq!(
            segment(&ENTRIES).len(),
            HEADER_BYTES + 4 * size(0) + 7 + 17 + 7
        );
    }

    #[test]
    fn a_flipped_byte_anywhere_costs_only_its_frame() {
        let data = segment(&ENTRIES);
        let third = HEADER_BYTES + size(7) + size(0);
        for at in third..third + size(17) {
            let mut bad = data.clone();
            bad[at] ^= 0x40;
            let (entries, damaged) = read(&bad);
            assert_eq!(damaged, 1, "byte {at}");
            assert_eq!(
                entries,
                [ENTRIES[0], ENTRIES[1], ENTRIES[3]].map(<[u8]>::to_vec)
            );
        }
    }

    #[test]
    fn a_torn_tail_costs_only_the_last_frame() {
        let data = segment(&ENTRIES);
        for cut in data.len() - size(7) + 1..data.len() {
            let (entries, damaged) = read(&data[..cut]);
            assert_eq!(entries.len(), 3, "cut at {cut}");
            assert_eq!(damaged, 1);
        }
    }

    #[test]
    fn reading_resumes_at_the_acknowledged_offset() {
        let mut data = segment(&ENTRIES);
        let after_two = HEADER_BYTES + size(7) + size(0);
        data[8..16].copy_from_slice(&(after_two as u64).to_le_bytes());
        assert_eq!(read(&data).0, [ENTRIES[2], ENTRIES[3]].map(<[u8]>::to_vec));
        assert_eq!(resume_at(&data), Some(Resume::At(after_two)));
        // A damaged offset (past the end, or off a frame) reads from the first frame:
        // entries may be sent twice, none is skipped.
        for bad in [u64::MAX, data.len() as u64 + 1, after_two as u64 + 1] {
            data[8..16].copy_from_slice(&bad.to_le_bytes());
            assert_eq!(resume_at(&data), Some(Resume::Damaged));
            assert_eq!(read(&data).0.len(), 4);
        }
        assert_eq!(resume_at(b"NOTSPOOL00000000"), None);
    }
}

//! Reading entries back, oldest segment first, and deleting what the server took.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::frame;
use super::{Batch, Reading, Segment, Spool};
use crate::buffer::Entry;
use crate::protocol::logwell::Level;

impl Spool {
    /// The next entries to send, oldest first, at most `max_entries` and about
    /// `max_bytes` (one at least); `None` when nothing waits.
    pub fn next_batch(
        &mut self,
        max_entries: usize,
        max_bytes: usize,
    ) -> io::Result<Option<Batch>> {
        loop {
            if self.reading.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let Some(r) = self.reading.as_ref() else {
                return Ok(None);
            };
            let mut frames = frame::Frames::new(&r.data, r.pos);
            let mut entries = Vec::new();
            let mut bytes = 0;
            // The end of the segment, unless the batch fills before it: damage at the tail
            // is then acknowledged with the last entries, not met twice.
            let mut end = r.data.len();
            for f in frames.by_ref() {
                entries.push(Entry {
                    seq: f.start as u64,
                    // Not kept on disk, and not needed: replay never sheds.
                    level: Level::Info,
                    json: f.entry.into(),
                });
                bytes += f.entry.len() + 1;
                if entries.len() >= max_entries || bytes >= max_bytes {
                    end = f.end;
                    break;
                }
            }
            self.damaged += frames.damaged;
            if !entries.is_empty() {
                return Ok(Some(Batch { entries, end }));
            }
            // Nothing sound left in this segment.
            if let Some(r) = self.reading.take() {
                self.finish(&r.segment)?;
            }
        }
    }

    /// Starts reading the oldest segment; false when there is none. Our own open segment
    /// is closed for it when nothing older waits.
    fn open_next(&mut self) -> io::Result<bool> {
        if self.queue.is_empty() {
            self.rotate()?;
        }
        while let Some(segment) = self.queue.pop_front() {
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&segment.path);
            let mut file = match opened {
                Ok(f) => f,
                // Removed by hand, or by `finish` after a crash between two removals.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.finish(&segment)?;
                    continue;
                }
                // Not ours to read (another user's): passed over, not a fault of ours.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    self.release_if_done(&segment.owner);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut data = Vec::new();
            file.read_to_end(&mut data)?;
            let pos = match frame::resume_at(&data) {
                Some(frame::Resume::At(pos)) => pos,
                Some(frame::Resume::Damaged) => {
                    self.damaged += 1;
                    frame::HEADER_BYTES
                }
                None => {
                    // Not a segment of ours (a torn header): nothing in it can be read.
                    self.damaged += 1;
                    self.finish(&segment)?;
                    continue;
                }
            };
            self.reading = Some(Reading {
                segment,
                file,
                data,
                pos,
            });
            return Ok(true);
        }
        Ok(false)
    }

    /// Records that the server took the frames of the segment being read up to `end`:
    /// after a crash, reading resumes there. The segment goes once it is all taken.
    pub fn acknowledge(&mut self, end: usize) -> io::Result<()> {
        let Some(r) = self.reading.as_mut() else {
            return Ok(());
        };
        if end <= r.pos {
            return Ok(());
        }
        r.pos = end;
        // Written even for a segment about to go: one that cannot be removed is then
        // read as done, not sent again.
        r.file.seek(SeekFrom::Start(frame::ACKED_AT))?;
        r.file.write_all(&(r.pos as u64).to_le_bytes())?;
        if r.pos < r.data.len() {
            return Ok(());
        }
        match self.reading.take() {
            Some(r) => self.finish(&r.segment),
            None => Ok(()),
        }
    }

    /// Removes a segment that is done with (sent, dropped or unreadable), and releases
    /// its owner's lock with its last segment.
    pub(super) fn finish(&mut self, segment: &Segment) -> io::Result<()> {
        self.remove(segment)?;
        self.release_if_done(&segment.owner);
        Ok(())
    }

    /// Releases an adopted owner's lock, and removes its lock file, once none of its
    /// segments is left to us.
    fn release_if_done(&mut self, owner: &str) {
        if owner == self.owner
            || self.queue.iter().any(|s| s.owner == owner)
            || self
                .reading
                .as_ref()
                .is_some_and(|r| r.segment.owner == owner)
        {
            return;
        }
        if let Some(i) = self.adopted.iter().position(|(o, _)| o == owner) {
            let _ = fs::remove_file(self.lock_path(owner));
            self.adopted.swap_remove(i);
        }
    }

    pub(super) fn remove(&mut self, segment: &Segment) -> io::Result<()> {
        match fs::remove_file(&segment.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.dir_bytes = self.dir_bytes.saturating_sub(segment.bytes);
        Ok(())
    }
}

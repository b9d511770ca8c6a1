//! Writing entries down: appending frames to this process's segment, starting a new one
//! at the segment size, and making room within `max_spool_bytes` by dropping the oldest.

use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::time::SystemTime;

use super::frame;
use super::{Segment, Spool, SpoolError, WriteError, Writer, SEGMENT_EXT};
use crate::buffer::Entry;

impl Spool {
    /// Appends `entries`, oldest first. Past `max_spool_bytes`, the oldest segments go
    /// first (`take_dropped` counts their entries). On an error, the entries before
    /// `written` are on disk and the rest are not.
    pub fn write(&mut self, entries: &[Entry]) -> Result<(), WriteError> {
        // Checked before, so that no file is made in a directory that replaced ours, and
        // after: only then are the entries known to be where a reader will find them (a
        // directory removed meanwhile would have them counted as spooled, and lost).
        self.check_home()
            .map_err(|error| WriteError { written: 0, error })?;
        match self.append_all(entries) {
            Ok(()) => self.check_home(),
            Err(e) => match self.check_home() {
                Err(gone @ SpoolError::Gone(_)) => Err(gone),
                _ => return Err(e),
            },
        }
        .map_err(|error| WriteError { written: 0, error })
    }

    fn append_all(&mut self, entries: &[Entry]) -> Result<(), WriteError> {
        let need: usize = entries.iter().map(|e| frame::size(e.json.len())).sum();
        let failed = |written, error| WriteError { written, error };
        self.make_room(need as u64).map_err(|e| failed(0, e))?;
        let mut out = Vec::with_capacity(need.min(self.segment_bytes as usize));
        // Entries on disk: those before the ones in `out`.
        let mut written = 0;
        for (i, e) in entries.iter().enumerate() {
            // Frames not yet appended count too: a segment holds at least one entry,
            // and otherwise no more than the segment size.
            let full = self.writer.as_ref().is_some_and(|w| {
                (w.has_frames() || !out.is_empty())
                    && w.segment.bytes + (out.len() + frame::size(e.json.len())) as u64
                        > self.segment_bytes
            });
            if full {
                self.append(&out).map_err(|e| failed(written, e.into()))?;
                written = i;
                out.clear();
                self.rotate().map_err(|e| failed(written, e.into()))?;
            }
            if self.writer.is_none() {
                let writer = self.new_writer().map_err(|e| failed(written, e.into()))?;
                self.writer = Some(writer);
            }
            frame::push(&mut out, &e.json);
        }
        self.append(&out).map_err(|e| failed(written, e.into()))
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        if let Err(e) = w.file.write_all(bytes) {
            // Take back a torn write, so the frames after it start clean; a reader would
            // skip it as damage anyway.
            let _ = w.file.set_len(w.segment.bytes);
            let _ = w.file.seek(SeekFrom::Start(w.segment.bytes));
            return Err(e);
        }
        w.segment.bytes += bytes.len() as u64;
        self.dir_bytes += bytes.len() as u64;
        Ok(())
    }

    fn new_writer(&mut self) -> io::Result<Writer> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = format!(
            "{}.{}.{seq:010}.{SEGMENT_EXT}",
            self.destination, self.owner
        );
        let path = self.dir.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all(&frame::header())?;
        self.dir_bytes += frame::HEADER_BYTES as u64;
        Ok(Writer {
            file,
            segment: Segment {
                path,
                owner: self.owner.clone(),
                seq,
                bytes: frame::HEADER_BYTES as u64,
                modified: SystemTime::now(),
            },
        })
    }

    /// Closes our segment and queues it to be sent (or removes it, empty).
    pub(super) fn rotate(&mut self) -> io::Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        if w.has_frames() {
            w.file.sync_data()?;
            self.queue.push_back(w.segment);
            Ok(())
        } else {
            self.remove(&w.segment)
        }
    }

    /// Drops the oldest segments we hold until `need` more bytes fit, counting their
    /// entries; nothing is dropped when even all we hold would not make the room.
    fn make_room(&mut self, need: u64) -> Result<(), SpoolError> {
        if self.dir_bytes + need <= self.max_bytes {
            return Ok(());
        }
        // Others may have sent or dropped since we last looked.
        if let Ok(listing) = self.list() {
            self.dir_bytes = listing.bytes;
        }
        let ours = self.reading.as_ref().map_or(0, |r| r.segment.bytes)
            + self.queue.iter().map(|s| s.bytes).sum::<u64>()
            + self.writer.as_ref().map_or(0, |w| w.segment.bytes);
        if self.dir_bytes.saturating_sub(ours) + need > self.max_bytes {
            return Err(SpoolError::Full);
        }
        while self.dir_bytes + need > self.max_bytes {
            if let Some(r) = self.reading.take() {
                let mut rest = frame::Frames::new(&r.data, r.pos);
                self.dropped += rest.by_ref().count() as u64;
                self.damaged += rest.damaged;
                self.finish(&r.segment)?;
            } else if let Some(s) = self.queue.pop_front() {
                self.dropped += self.count_entries(&s);
                self.finish(&s)?;
            } else if self.writer.is_some() {
                self.rotate()?;
            } else {
                return Err(SpoolError::Full);
            }
        }
        Ok(())
    }

    fn count_entries(&mut self, s: &Segment) -> u64 {
        let Ok(data) = fs::read(&s.path) else {
            return 0;
        };
        let from = frame::resume_at(&data).map_or(data.len(), |r| r.offset());
        let mut frames = frame::Frames::new(&data, from);
        let n = frames.by_ref().count() as u64;
        self.damaged += frames.damaged;
        n
    }
}

impl Writer {
    pub(super) fn has_frames(&self) -> bool {
        self.segment.bytes > frame::HEADER_BYTES as u64
    }
}

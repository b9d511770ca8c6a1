//! The disk spool: entries the server could not take in time (an outage, a full memory
//! queue, an exit) are written to files in `spool_dir`, and sent again, oldest first, by
//! this process or by the next one that starts with the same directory.
//!
//! Files: `{owner}.lock`, which the process that made it keeps locked as long as it lives,
//! and that owner's segments, `{destination}.{owner}.{seq}.lws` (format in `frame`). Only
//! the holder of an owner's lock reads or deletes that owner's segments: the owner itself,
//! or, once the owner is gone (its lock died with it), the one process that took its lock
//! (adoption). `destination` names where the entries were meant to go (protocol, URL,
//! credentials), so a directory shared by handlers of several servers sends each entry to
//! its own; `max_spool_bytes` bounds each destination's segments. Only the flush thread
//! touches the spool; a log call never does.

mod frame;

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::buffer::Entry;
use crate::protocol::logwell::Level;

/// How often the directory is looked at again for the files of owners that have gone.
const SCAN_EVERY: Duration = Duration::from_secs(10);
/// A lock file with no segments is removed once it is this old: its owner has long had
/// the time to lock it, so a lock taken is its owner's death, not a race with its birth.
const ORPHAN_LOCK_AGE: Duration = Duration::from_secs(60);
const SEGMENT_EXT: &str = "lws";
const LOCK_EXT: &str = "lock";
/// Owners adopted at once: each holds a descriptor. A directory left with thousands of
/// dead owners (a cron job through a long outage) is taken on this many at a time.
const MAX_ADOPTED: usize = 16;

/// Why entries could not be written.
#[derive(Debug)]
pub enum SpoolError {
    /// `max_spool_bytes` would be passed, and what we hold is not enough to drop for room.
    Full,
    /// The directory was removed or replaced under us (said how): what we wrote there is
    /// out of reach, and the spool must be opened again.
    Gone(&'static str),
    Io(io::Error),
}

impl From<io::Error> for SpoolError {
    fn from(e: io::Error) -> Self {
        SpoolError::Io(e)
    }
}

/// A write that stopped part way: the first `written` entries are on disk.
#[derive(Debug)]
pub struct WriteError {
    pub written: usize,
    pub error: SpoolError,
}

/// Entries read back for one request: `seq` is each one's offset in its segment, and
/// `end` where the request's last frame ends, to acknowledge once it is taken.
pub struct Batch {
    pub entries: Vec<Entry>,
    pub end: usize,
}

pub struct Spool {
    dir: PathBuf,
    /// The directory's identity when opened: one removed and made again, or moved aside
    /// and replaced, has another.
    home: DirId,
    destination: String,
    owner: String,
    /// Our own lock, held for life: while we live, nobody adopts our files.
    _own_lock: Lock,
    max_bytes: u64,
    segment_bytes: u64,
    /// Our segment being appended to.
    writer: Option<Writer>,
    next_seq: u64,
    /// Closed segments waiting to be sent, oldest first: ours and adopted ones.
    queue: VecDeque<Segment>,
    /// Owners whose files we adopted, each with its lock, released with its last segment.
    adopted: Vec<(String, Lock)>,
    reading: Option<Reading>,
    /// Our destination's segments in the directory, anyone's, as last counted, plus our
    /// changes since: what `max_bytes` bounds.
    dir_bytes: u64,
    next_scan: Instant,
    /// Damaged stretches met while reading, not yet taken by `take_damaged`.
    damaged: u64,
    /// Entries dropped for room, not yet taken by `take_dropped`.
    dropped: u64,
}

/// A directory's identity: its device and inode (nothing to compare off Unix).
#[cfg(unix)]
type DirId = (u64, u64);
#[cfg(not(unix))]
type DirId = ();

#[cfg(unix)]
fn dir_id(meta: &fs::Metadata) -> DirId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_id(_: &fs::Metadata) -> DirId {}

/// Whether a file we hold open was removed from every directory.
#[cfg(unix)]
fn unlinked(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata().is_ok_and(|m| m.nlink() == 0)
}

#[cfg(not(unix))]
fn unlinked(_: &File) -> bool {
    false
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    owner: String,
    seq: u64,
    bytes: u64,
    modified: SystemTime,
}

struct Writer {
    file: File,
    segment: Segment,
}

struct Reading {
    segment: Segment,
    file: File,
    data: Vec<u8>,
    pos: usize,
}

/// What `Spool::list` found in the directory.
struct Listing {
    /// Our destination's segments, anyone's.
    bytes: u64,
    /// Segments of our destination whose owner is neither us nor adopted yet.
    others: Vec<Segment>,
    locks: Vec<(PathBuf, SystemTime)>,
    /// Owners with a segment of any destination.
    owners: HashSet<String>,
}

/// An exclusive lock on a file, held until dropped (or until the process dies).
struct Lock {
    file: Option<File>,
    #[cfg(unix)]
    token: Option<usize>,
}

impl Lock {
    /// The lock on `path`; `None` while another holds it. Our own is made; another
    /// owner's is opened to read only (a lock needs no more), and made only if missing.
    fn try_take(path: &Path, own: bool) -> io::Result<Option<Lock>> {
        crate::fork::without_fork(|| {
            let make = || {
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
            };
            let file = match File::open(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => make()?,
                _ if own => make()?,
                other => other?,
            };
            match file.try_lock() {
                Ok(()) => Ok(Some(Lock {
                    #[cfg(unix)]
                    token: crate::fork::close_in_child(&file),
                    file: Some(file),
                })),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(e)) => Err(e),
            }
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        crate::fork::without_fork(|| {
            #[cfg(unix)]
            if let Some(token) = self.token {
                crate::fork::forget(token);
            }
            drop(self.file.take());
        });
    }
}

/// `{destination}.{owner}.{seq}.lws` taken apart.
fn parse_segment_name(name: &str) -> Option<(&str, &str, u64)> {
    let stem = name.strip_suffix(SEGMENT_EXT)?.strip_suffix('.')?;
    let mut parts = stem.split('.');
    let (destination, owner, seq) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || owner.is_empty() {
        return None;
    }
    Some((destination, owner, seq.parse().ok()?))
}

/// A name no other process will make: 64 bits from the OS's randomness, the pid and the
/// clock.
fn new_owner_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}", h.finish())
}

impl Spool {
    /// Opens `dir` (made if missing) for entries meant for `destination`, and adopts the
    /// files of owners that have gone.
    pub fn open(dir: &Path, destination: &str, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let owner = new_owner_id();
        let own_lock = Lock::try_take(&dir.join(format!("{owner}.{LOCK_EXT}")), true)?
            .ok_or_else(|| io::Error::other("a new spool lock was held already"))?;
        let mut spool = Spool {
            home: dir_id(&fs::metadata(dir)?),
            dir: dir.to_owned(),
            destination: destination.to_owned(),
            owner,
            _own_lock: own_lock,
            max_bytes,
            // Small enough that dropping the oldest for room drops an eighth at most.
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 4 << 20),
            writer: None,
            next_seq: 0,
            queue: VecDeque::new(),
            adopted: Vec::new(),
            reading: None,
            dir_bytes: 0,
            next_scan: Instant::now(),
            damaged: 0,
            dropped: 0,
        };
        spool.scan()?;
        Ok(spool)
    }

    /// Bytes of our destination's segments in the directory, as far as we know.
    pub fn bytes(&self) -> u64 {
        self.dir_bytes
    }

    /// Whether entries wait on disk for this process to send.
    pub fn has_backlog(&self) -> bool {
        self.reading.is_some()
            || !self.queue.is_empty()
            || self.writer.as_ref().is_some_and(Writer::has_frames)
    }

    /// Damaged stretches met since the last call.
    pub fn take_damaged(&mut self) -> u64 {
        std::mem::take(&mut self.damaged)
    }

    /// Entries dropped for room since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Looks at the directory again if it is time: checks it is still ours, counts its
    /// bytes, and adopts the segments of owners that have gone.
    pub fn scan_if_due(&mut self, now: Instant) -> Result<(), SpoolError> {
        if now < self.next_scan {
            return Ok(());
        }
        self.check_home()?;
        Ok(self.scan()?)
    }

    /// Whether `spool_dir` is still the directory we opened, and our open segment still
    /// in it: one removed (a cleanup script, a tmp reaper) or replaced (a redeploy) takes
    /// what was written into it out of reach, though writes to the open file succeed.
    fn check_home(&self) -> Result<(), SpoolError> {
        let now = match fs::metadata(&self.dir) {
            Ok(meta) => dir_id(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::Gone("was removed"));
            }
            Err(e) => return Err(SpoolError::Io(e)),
        };
        if now != self.home {
            return Err(SpoolError::Gone("was replaced by another directory"));
        }
        if self.writer.as_ref().is_some_and(|w| unlinked(&w.file)) {
            return Err(SpoolError::Gone("had its files removed"));
        }
        Ok(())
    }

    /// Lets go of a spool whose directory is gone (`check_home`), locks and all. Returns
    /// how many of its segments went with it, each a stretch lost; those still in
    /// `spool_dir` are adopted by the next spool there, as any gone owner's are.
    pub fn abandon(self) -> u64 {
        let gone = |s: &Segment| !s.path.exists();
        let mut lost = self.queue.iter().filter(|s| gone(s)).count() as u64;
        lost += u64::from(self.reading.as_ref().is_some_and(|r| gone(&r.segment)));
        if let Some(w) = &self.writer {
            if unlinked(&w.file) || gone(&w.segment) {
                lost += u64::from(w.has_frames());
            } else {
                // Made in a directory that replaced ours as the write began: what it
                // holds is written again, by the next spool.
                let _ = fs::remove_file(&w.segment.path);
            }
        }
        lost
    }

    fn scan(&mut self) -> io::Result<()> {
        self.next_scan = Instant::now() + SCAN_EVERY;
        let listing = self.list()?;
        self.dir_bytes = listing.bytes;
        self.remove_orphan_locks(&listing);
        // Owners found alive (or not ours to touch) in this scan: asked once.
        let mut passed: Vec<String> = Vec::new();
        for segment in listing.others {
            if !self.adopts(&segment.owner) {
                if passed.contains(&segment.owner) || self.adopted.len() >= MAX_ADOPTED {
                    continue;
                }
                // Alive; or a file we may not open (another user's): left alone.
                let Ok(Some(lock)) = Lock::try_take(&self.lock_path(&segment.owner), false) else {
                    passed.push(segment.owner);
                    continue;
                };
                self.adopted.push((segment.owner.clone(), lock));
            }
            self.queue.push_back(segment);
        }
        self.queue
            .make_contiguous()
            .sort_by(|a, b| (a.modified, &a.owner, a.seq).cmp(&(b.modified, &b.owner, b.seq)));
        Ok(())
    }

    /// The directory as it is. A file that cannot be read is passed over.
    fn list(&self) -> io::Result<Listing> {
        let mut listing = Listing {
            bytes: 0,
            others: Vec::new(),
            locks: Vec::new(),
            owners: HashSet::new(),
        };
        for item in fs::read_dir(&self.dir)?.flatten() {
            let Ok(meta) = item.metadata() else { continue };
            let name = item.file_name();
            let name = name.to_string_lossy();
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(LOCK_EXT) {
                listing.locks.push((item.path(), modified));
                continue;
            }
            let Some((destination, owner, seq)) = parse_segment_name(&name) else {
                continue;
            };
            listing.owners.insert(owner.to_owned());
            if destination != self.destination {
                continue;
            }
            listing.bytes += meta.len();
            if owner != self.owner && !self.adopts(owner) {
                listing.others.push(Segment {
                    path: item.path(),
                    owner: owner.to_owned(),
                    seq,
                    bytes: meta.len(),
                    modified,
                });
            }
        }
        Ok(listing)
    }

    /// Removes the lock files of owners that left no segment, once they are old.
    fn remove_orphan_locks(&self, listing: &Listing) {
        let old = SystemTime::now() - ORPHAN_LOCK_AGE;
        for (path, modified) in &listing.locks {
            let owner = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            let Some(owner) = owner else { continue };
            if *modified > old
                || owner == self.owner
                || self.adopts(&owner)
                || listing.owners.contains(&owner)
            {
                continue;
            }
            if let Ok(Some(_lock)) = Lock::try_take(path, false) {
                let _ = fs::remove_file(path);
            }
        }
    }

    fn adopts(&self, owner: &str) -> bool {
        self.adopted.iter().any(|(o, _)| o == owner)
    }

    fn lock_path(&self, owner: &str) -> PathBuf {
        self.dir.join(format!("{owner}.{LOCK_EXT}"))
    }

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
            let full = self.writer.as_ref().is_some_and(|w| {
                w.has_frames()
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
    fn rotate(&mut self) -> io::Result<()> {
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
    fn finish(&mut self, segment: &Segment) -> io::Result<()> {
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

    fn remove(&mut self, segment: &Segment) -> io::Result<()> {
        match fs::remove_file(&segment.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.dir_bytes = self.dir_bytes.saturating_sub(segment.bytes);
        Ok(())
    }

    /// At close: makes what we wrote durable, and removes our lock file when nothing of
    /// ours is left (otherwise the next process adopts the rest).
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.take() {
            if w.has_frames() {
                w.file.sync_data()?;
                // Left for the next process; `bytes` and order stay right if we go on.
                self.queue.push_back(w.segment);
            } else {
                self.remove(&w.segment)?;
            }
        }
        if !self.queue.iter().any(|s| s.owner == self.owner)
            && self
                .reading
                .as_ref()
                .is_none_or(|r| r.segment.owner != self.owner)
        {
            let _ = fs::remove_file(self.lock_path(&self.owner));
        }
        Ok(())
    }
}

impl Writer {
    fn has_frames(&self) -> bool {
        self.segment.bytes > frame::HEADER_BYTES as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("lw-spool-{name}-{}", new_owner_id()));
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entries(range: std::ops::Range<u64>, size: usize) -> Vec<Entry> {
        range
            .map(|i| {
                let mut json = format!("{{\"i\":{i},\"pad\":\"").into_bytes();
                json.resize(size.saturating_sub(2).max(json.len()), b'x');
                json.extend_from_slice(b"\"}");
                Entry {
                    seq: i,
                    level: Level::Info,
                    json: json.into(),
                }
            })
            .collect()
    }

    fn index(e: &Entry) -> u64 {
        let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap_or_default();
        v["i"].as_u64().unwrap_or(u64::MAX)
    }

    /// Reads everything `spool` sends, acknowledging each batch.
    fn drain(spool: &mut Spool) -> Vec<u64> {
        let mut seen = Vec::new();
        while let Ok(Some(batch)) = spool.next_batch(100, 256 << 10) {
            seen.extend(batch.entries.iter().map(index));
            spool.acknowledge(batch.end).expect("acknowledge");
        }
        seen
    }

    fn segments(dir: &Path) -> usize {
        fs::read_dir(dir).map_or(0, |items| {
            items
                .flatten()
                .filter(|i| i.file_name().to_string_lossy().ends_with(".lws"))
                .count()
        })
    }

    fn gone(result: Result<(), WriteError>) -> (usize, &'static str) {
        match result {
            Err(WriteError {
                written,
                error: SpoolError::Gone(how),
            }) => (written, how),
            other => panic!("expected the directory to be gone, got {other:?}"),
        }
    }

    #[test]
    fn a_directory_removed_or_replaced_under_the_spool_fails_the_write_that_follows() {
        let tmp = TempDir::new("gone");
        let mut spool = Spool::open(&tmp.0, "dest", 1 << 20).expect("open");
        spool.write(&entries(0..10, 100)).expect("write");
        fs::remove_dir_all(&tmp.0).expect("remove");
        // The open segment takes the write, but no reader would ever find it.
        assert_eq!(gone(spool.write(&entries(10..20, 100))), (0, "was removed"));
        assert_eq!(spool.abandon(), 1);

        let mut spool = Spool::open(&tmp.0, "dest", 1 << 20).expect("made again");
        spool.write(&entries(20..30, 100)).expect("write");
        let aside = tmp.0.with_extension("old");
        fs::rename(&tmp.0, &aside).expect("move aside");
        fs::create_dir(&tmp.0).expect("replace");
        assert_eq!(
            gone(
                spool
                    .scan_if_due(Instant::now() + SCAN_EVERY)
                    .map_err(|error| WriteError { written: 0, error })
            ),
            (0, "was replaced by another directory")
        );
        assert_eq!(
            gone(spool.write(&entries(30..40, 100))),
            (0, "was replaced by another directory")
        );
        let _ = fs::remove_dir_all(&aside);

        let mut spool = Spool::open(&tmp.0, "dest", 1 << 20).expect("open");
        spool.write(&entries(40..50, 100)).expect("write");
        for item in fs::read_dir(&tmp.0).expect("list").flatten() {
            fs::remove_file(item.path()).expect("remove a file");
        }
        assert_eq!(
            gone(spool.write(&entries(50..60, 100))),
            (0, "had its files removed")
        );
    }

    #[test]
    fn entries_come_back_in_order_across_segments_and_leave_no_file() {
        let dir = TempDir::new("order");
        let mut spool = Spool::open(&dir.0, "d", 1 << 20).expect("open");
        for chunk in 0..10 {
            spool
                .write(&entries(chunk * 100..(chunk + 1) * 100, 200))
                .expect("write");
            assert_eq!(spool.take_dropped(), 0);
        }
        assert!(segments(&dir.0) > 1, "200 KB in 128 KiB segments");
        assert!(spool.has_backlog());
        assert_eq!(drain(&mut spool), (0..1000).collect::<Vec<_>>());
        assert!(!spool.has_backlog());
        assert_eq!(segments(&dir.0), 0);
        assert_eq!(spool.bytes(), 0);
        spool.close().expect("close");
        assert_eq!(fs::read_dir(&dir.0).map(Iterator::count).ok(), Some(0));
    }

    #[test]
    fn past_the_bound_the_oldest_go_and_are_counted() {
        let dir = TempDir::new("bound");
        let mut spool = Spool::open(&dir.0, "d", 1 << 20).expect("open");
        let mut dropped = 0;
        for chunk in 0..40 {
            spool
                .write(&entries(chunk * 100..(chunk + 1) * 100, 500))
                .expect("room is made");
            dropped += spool.take_dropped();
        }
        assert!(spool.bytes() <= 1 << 20, "{}", spool.bytes());
        let left = drain(&mut spool);
        assert_eq!(left.len() as u64 + dropped, 4000);
        // What is left is the newest, in order, without a gap.
        let first = left[0];
        assert_eq!(left, (first..4000).collect::<Vec<_>>());
        // An entry bigger than the bound cannot be written at all, and nothing is
        // dropped for it.
        spool.write(&entries(0..300, 500)).expect("write");
        let before = spool.bytes();
        assert!(matches!(
            spool.write(&entries(0..1, 2 << 20)),
            Err(WriteError {
                written: 0,
                error: SpoolError::Full
            })
        ));
        assert_eq!((spool.take_dropped(), spool.bytes()), (0, before));
    }

    #[test]
    fn another_destinations_files_neither_count_nor_block() {
        let dir = TempDir::new("destinations");
        let mut stale = Spool::open(&dir.0, "old", 1 << 20).expect("open");
        stale.write(&entries(0..3000, 300)).expect("write");
        drop(stale);
        let mut spool = Spool::open(&dir.0, "new", 1 << 20).expect("open");
        assert_eq!(spool.bytes(), 0);
        spool
            .write(&entries(0..2000, 300))
            .expect("within its own bound");
        assert_eq!(spool.take_dropped(), 0);
        assert_eq!(drain(&mut spool), (0..2000).collect::<Vec<_>>());
    }

    #[test]
    fn a_gone_owners_files_are_adopted_by_one_process_and_resume_after_the_acknowledged() {
        let dir = TempDir::new("adopt");
        let mut first = Spool::open(&dir.0, "d", 1 << 20).expect("open");
        first.write(&entries(0..300, 100)).expect("write");
        let mut reader = Spool::open(&dir.0, "d", 1 << 20).expect("open");
        assert!(!reader.has_backlog(), "a living owner's files are its own");
        // The first takes 100 entries, then dies (its lock goes with it).
        let batch = first
            .next_batch(100, 1 << 20)
            .ok()
            .flatten()
            .expect("batch");
        first.acknowledge(batch.end).expect("acknowledge");
        drop(first);
        let other_destination = Spool::open(&dir.0, "e", 1 << 20).expect("open");
        assert!(
            !other_destination.has_backlog(),
            "entries go where they were meant to"
        );
        reader.scan().expect("scan");
        let mut late = Spool::open(&dir.0, "d", 1 << 20).expect("open");
        assert!(!late.has_backlog(), "adopted by the reader, not by both");
        assert_eq!(drain(&mut reader), (100..300).collect::<Vec<_>>());
        assert_eq!(segments(&dir.0), 0);
        assert!(drain(&mut late).is_empty());
        drop((reader, late, other_destination));
    }

    #[test]
    fn a_torn_tail_and_a_flipped_byte_cost_their_entries_only() {
        let dir = TempDir::new("damage");
        let mut writer = Spool::open(&dir.0, "d", 1 << 20).expect("open");
        writer.write(&entries(0..10, 100)).expect("write");
        writer.close().expect("close");
        drop(writer);
        let path = fs::read_dir(&dir.0)
            .expect("dir")
            .flatten()
            .map(|i| i.path())
            .find(|p| p.extension().is_some_and(|e| e == "lws"))
            .expect("a segment");
        let mut data = fs::read(&path).expect("read");
        data[frame::HEADER_BYTES + frame::size(100) * 3 + 40] ^= 1;
        data.truncate(data.len() - 30);
        fs::write(&path, &data).expect("write");
        let mut reader = Spool::open(&dir.0, "d", 1 << 20).expect("open");
        assert_eq!(drain(&mut reader), vec![0, 1, 2, 4, 5, 6, 7, 8]);
        assert_eq!(reader.take_damaged(), 2);
    }
}

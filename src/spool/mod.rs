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
//!
//! Where things are: `owners` (file names and locks), `write` (appending, rotating,
//! making room), `read` (reading back and deleting what was sent), `frame` (the bytes of
//! one entry on disk); the directory, its scans and adoption are here.

pub(crate) mod frame;
mod owners;
mod read;
#[cfg(test)]
mod tests;
mod write;

use owners::{new_owner_id, parse_segment_name, Lock};

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::buffer::Entry;

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

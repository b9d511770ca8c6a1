//! The names and locks that say who owns which files of a spool directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::SEGMENT_EXT;

/// An exclusive lock on a file, held until dropped (or until the process dies).
pub(super) struct Lock {
    file: Option<File>,
    #[cfg(unix)]
    token: Option<usize>,
}

impl Lock {
    /// The lock on `path`; `None` while another holds it. Our own is made; another
    /// owner's is opened to read only (a lock needs no more), and made only if missing.
    pub(super) fn try_take(path: &Path, own: bool) -> io::Result<Option<Lock>> {
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
pub(super) fn parse_segment_name(name: &str) -> Option<(&str, &str, u64)> {
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
pub(super) fn new_owner_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}", h.finish())
}

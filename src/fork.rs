//! Which process this is, as far as forks go: a number bumped in the child of every
//! `fork()`, including one made in C (uWSGI forks its workers so), which Python's
//! `os.register_at_fork` hooks never see. A core made in another generation belongs to
//! the parent: its thread does not exist here.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Descriptors a forked child closes at once: the spool's locks, which must die with the
/// process that took them (a child sharing one would keep it after its parent exits, and
/// the parent's files could not be adopted). -1: a free slot.
#[cfg(unix)]
static CLOSED_IN_CHILD: [std::sync::atomic::AtomicI32; 64] =
    [const { std::sync::atomic::AtomicI32::new(-1) }; 64];

/// The current generation: one load, cheap enough for every log call.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(unix)]
extern "C" fn in_child() {
    // Async-signal-safe, as a handler run inside fork() must be.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    for slot in &CLOSED_IN_CHILD {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: the descriptor is the parent's lock, which nothing in the child uses:
            // the parent's spool lives on its flush thread, which does not exist here.
            unsafe { libc::close(fd) };
        }
    }
}

/// Closes `file`'s descriptor in forked children. Returns a token for `keep_in_child`
/// when the file is closed; `None` when every slot is taken (the lock then lives on in
/// children, and adoption waits for them too).
#[cfg(unix)]
pub fn close_in_child(file: &std::fs::File) -> Option<usize> {
    use std::os::fd::AsRawFd;
    watch();
    let fd = file.as_raw_fd();
    CLOSED_IN_CHILD.iter().position(|slot| {
        slot.compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    })
}

/// Forgets a descriptor `close_in_child` registered, before it is closed.
#[cfg(unix)]
pub fn forget(token: usize) {
    if let Some(slot) = CLOSED_IN_CHILD.get(token) {
        slot.store(-1, Ordering::Relaxed);
    }
}

/// Starts counting forks; once per process is enough (children inherit the handler).
pub fn watch() {
    #[cfg(unix)]
    {
        static WATCHING: std::sync::Once = std::sync::Once::new();
        WATCHING.call_once(|| {
            // SAFETY: registers a handler that only touches an atomic; pthread_atfork
            // keeps the function pointer, which lives as long as the program.
            let _ = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        });
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_child_of_a_fork_made_in_c_is_a_new_generation() {
        watch();
        let before = generation();
        // SAFETY: the child only reads an atomic and exits at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = i32::from(generation() != before + 1);
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        assert!(pid > 0, "fork failed");
        let mut status = 0;
        // SAFETY: waits for the child just made.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(generation(), before, "the parent's generation is unchanged");
    }
}

//! Which process this is, as far as forks go: a number bumped in the child of every
//! `fork()`, including one made in C (uWSGI forks its workers so), which Python's
//! `os.register_at_fork` hooks never see. A core made in another generation belongs to
//! the parent: its thread does not exist here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Descriptors a forked child closes at once: the spool's locks, which must die with the
/// process that took them (a child sharing one would keep it after its parent exits, and
/// the parent's files could not be adopted). -1: a free slot.
#[cfg(unix)]
static CLOSED_IN_CHILD: [std::sync::atomic::AtomicI32; 64] =
    [const { std::sync::atomic::AtomicI32::new(-1) }; 64];

/// Held while a descriptor is opened and registered, or forgotten and closed, and by
/// `fork()` itself, from before it to after it on both sides: a child never inherits a
/// lock taken but not yet registered.
static OPENING: AtomicBool = AtomicBool::new(false);

fn hold_opening() {
    while OPENING
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

/// Runs `f`, which opens and registers (or forgets and closes) a descriptor, with no
/// fork in between. `f` only makes system calls: it neither panics nor blocks for long.
pub fn without_fork<T>(f: impl FnOnce() -> T) -> T {
    hold_opening();
    let out = f();
    OPENING.store(false, Ordering::Release);
    out
}

#[cfg(unix)]
extern "C" fn before_fork() {
    hold_opening();
}

#[cfg(unix)]
extern "C" fn in_parent() {
    OPENING.store(false, Ordering::Release);
}

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
    OPENING.store(false, Ordering::Release);
}

/// Closes `file`'s descriptor in forked children (call it inside `without_fork`).
/// Returns a token for `forget`; `None` when every slot is taken (the lock then lives on
/// in children, and adoption waits for them too).
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

/// Forgets a descriptor `close_in_child` registered, before it is closed (inside
/// `without_fork`).
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
            // SAFETY: registers handlers that only touch atomics and close descriptors
            // (async-signal-safe); pthread_atfork keeps the function pointers, which live
            // as long as the program.
            let _ =
                unsafe { libc::pthread_atfork(Some(before_fork), Some(in_parent), Some(in_child)) };
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

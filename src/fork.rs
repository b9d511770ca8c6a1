//! Which process this is, as far as forks go: a number bumped in the child of every
//! `fork()`, including one made in C (uWSGI forks its workers so), which Python's
//! `os.register_at_fork` hooks never see. A core made in another generation belongs to
//! the parent: its thread does not exist here.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current generation: one load, cheap enough for every log call.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(unix)]
extern "C" fn in_child() {
    // Async-signal-safe, as a handler run inside fork() must be.
    GENERATION.fetch_add(1, Ordering::Relaxed);
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

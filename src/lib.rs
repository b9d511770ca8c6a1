//! logwell-handler's Rust core. The modules below `python` know nothing of Python and
//! are tested with `cargo test`; `python` is the `PyO3` edge. This file only wires them.

mod buffer;
mod config;
mod errors;
mod fork;
#[cfg(fuzzing)]
pub mod fuzzing;
mod json;
mod json_string;
mod key_set;
mod lifecycle;
mod pacer;
mod protocol;
mod python;
mod record;
mod resolver;
mod spool;
mod stats;
mod transport;
mod worker;

use pyo3::prelude::*;

/// `gil_used = true`: the module has never been run without the GIL. Its Rust side is
/// thread-safe (atomics, locks, a lock-free queue), but the edge reads records and dicts
/// that other threads may change, relying on the GIL; see docs/architecture.md.
#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    python::register(m)
}

//! logwell-handler's Rust core. The modules below `python` know nothing of Python and
//! are tested with `cargo test`; `python` is the PyO3 edge. This file only wires them.

pub mod buffer;
pub mod config;
pub mod errors;
pub mod json;
pub mod otlp;
pub mod pacer;
mod python;
pub mod record;
mod resolver;
pub mod stats;
pub mod transport;
pub mod worker;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    python::register(m)
}

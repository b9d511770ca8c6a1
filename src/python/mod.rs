//! The `PyO3` edge: the only code that knows of Python.

mod core;
mod errors;
mod record;
mod record_view;
mod storm;
mod trace;

use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    crate::fork::watch();
    m.add_class::<core::Core>()?;
    // The package's version has one home, Cargo.toml; maturin puts it in the metadata.
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "EMPTY_MESSAGE_PLACEHOLDER",
        crate::protocol::EMPTY_MESSAGE_PLACEHOLDER,
    )?;
    Ok(())
}

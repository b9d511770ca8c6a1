//! The core's `Error` as the Python `logwell_handler.LogwellError`.

use pyo3::prelude::*;

use crate::errors::Error;

pyo3::import_exception!(logwell_handler._errors, LogwellError);

/// Arguments of `LogwellError(message, code, status_code, retryable, retry_after)`.
fn args(e: &Error) -> (String, &'static str, Option<u16>, bool, Option<f64>) {
    (
        e.to_string(),
        e.code().as_str(),
        e.status_code(),
        e.retryable(),
        e.retry_after().map(|d| d.as_secs_f64()),
    )
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        LogwellError::new_err(args(&e))
    }
}

/// A `LogwellError` instance, to hand to a callback rather than raise.
pub fn to_py_error<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    py.get_type::<LogwellError>().call1(args(e))
}

//! The current OpenTelemetry span, read at `emit()` time for trace correlation.
//!
//! Nothing is imported: an application with a span has imported `opentelemetry.trace`
//! already, so until that module is in `sys.modules` there is no span to find, and the
//! cost per call is one dict lookup. Once it is there, `get_current_span` is taken from
//! it (once) and called per record.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::record::TraceContext;

static SYS_MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
static GET_CURRENT_SPAN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `opentelemetry.trace.get_current_span`, once that module is imported.
fn get_current_span(py: Python<'_>) -> Option<&'static Py<PyAny>> {
    if let Some(f) = GET_CURRENT_SPAN.get(py) {
        return Some(f);
    }
    let modules = SYS_MODULES
        .get_or_try_init(py, || -> PyResult<Py<PyDict>> {
            Ok(py
                .import(intern!(py, "sys"))?
                .getattr(intern!(py, "modules"))?
                .cast_into::<PyDict>()?
                .unbind())
        })
        .ok()?;
    let module = modules
        .bind(py)
        .get_item(intern!(py, "opentelemetry.trace"))
        .ok()??;
    // Absent while the module is still being imported: try again on the next record.
    let f = module.getattr(intern!(py, "get_current_span")).ok()?;
    Some(GET_CURRENT_SPAN.get_or_init(py, || f.unbind()))
}

/// The span context of the current span, when there is a valid one. Never raises:
/// any failure reading it means no trace ids on the record.
pub fn current_trace(py: Python<'_>) -> Option<TraceContext> {
    let span = get_current_span(py)?.bind(py).call0().ok()?;
    let context = span.call_method0(intern!(py, "get_span_context")).ok()?;
    let trace_id: u128 = context
        .getattr(intern!(py, "trace_id"))
        .ok()?
        .extract()
        .ok()?;
    let span_id: u64 = context
        .getattr(intern!(py, "span_id"))
        .ok()?
        .extract()
        .ok()?;
    // All-zero ids are OpenTelemetry's "no span" (INVALID_SPAN outside any span).
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    let flags = context
        .getattr(intern!(py, "trace_flags"))
        .ok()
        .and_then(|f| f.extract::<u8>().ok())
        .unwrap_or(0);
    Some(TraceContext {
        trace_id,
        span_id,
        flags,
    })
}

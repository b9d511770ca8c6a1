//! `_core.Core`: one shipper (buffer, flush thread, counters) and the record encoder,
//! as the Python handler sees them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyFrozenSet, PyInt, PyString};

use super::errors::to_py_error;
use super::record::{
    as_text, encode_value, now_seconds, py_str, LogCall, RecordEncoder, SourcePath,
};
use super::record_view::RecordShape;
use super::storm::{combine, hash_of, Kept, StormGuard, Summary, Verdict, WINDOW_SECONDS};
use super::trace::current_trace;
use crate::config::{self, Config, Settings};
use crate::errors::{panic_text, Error};
use crate::fork;
use crate::json::ValueStyle;
use crate::lifecycle::{Lifecycle, State};
use crate::protocol::logwell::{Level, Timestamp};
use crate::protocol::Protocol;
use crate::worker::{Events, Shipper, PAUSE_WAIT};

/// Calls the Python callbacks from the flush thread. Once the shipper is closed it
/// never attaches to the interpreter again, so it cannot touch a finalising one.
struct PyEvents {
    on_error: Option<Py<PyAny>>,
    on_flush: Option<Py<PyAny>>,
    lifecycle: Arc<Lifecycle>,
}

impl PyEvents {
    fn call(
        &self,
        callback: Option<&Py<PyAny>>,
        arg: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>>,
    ) {
        let Some(callback) = callback else { return };
        let closed = || self.lifecycle.state() == State::Closed;
        if closed() {
            return;
        }
        // `try_attach` returns None while the interpreter shuts down.
        let _ = Python::try_attach(|py| {
            // Checked again with the GIL held: `Core.close` marks the shipper closed
            // before it takes the GIL back, so once it returns no callback runs.
            if closed() {
                return;
            }
            // The Python side wraps user callbacks; an exception here is a bug there.
            if let Err(e) = arg(py).and_then(|a| callback.call1(py, (a,))) {
                e.write_unraisable(py, None);
            }
        });
    }
}

impl Events for PyEvents {
    fn error(&self, error: &Error) {
        self.call(self.on_error.as_ref(), |py| {
            Ok(to_py_error(py, error)?.unbind())
        });
    }

    fn delivered(&self, count: u64) {
        self.call(self.on_flush.as_ref(), |py| {
            Ok(count.into_pyobject(py)?.into_any().unbind())
        });
    }
}

/// A shipper and an encoder. Several `Core`s may share one shipper (`derive`): a client
/// and the handlers attached to it, each with its own service and metadata.
#[pyclass(module = "logwell_handler._core", name = "Core", frozen)]
pub struct Core {
    shipper: Arc<Shipper>,
    encoder: RecordEncoder,
    /// `storm_limit`: None when off. Each handler's own, not shared with a client's.
    storm: Option<StormGuard>,
    /// The process generation (`fork::generation`) this core was made in.
    generation: u64,
}

fn invalid(field: &'static str, problem: String) -> Error {
    Error::InvalidConfig { field, problem }
}

/// A setting the Python side always passes was missing: a bug there.
fn required(field: &'static str) -> Error {
    invalid(field, "is required (internal)".into())
}

/// The settings given by name. Each is read once; a name never read is a mistake of the
/// caller's (a setting added on one side only).
struct Given<'py> {
    settings: Bound<'py, PyDict>,
}

impl<'py> Given<'py> {
    fn new(py: Python<'py>, settings: Option<&Bound<'py, PyDict>>) -> PyResult<Given<'py>> {
        Ok(Given {
            settings: settings.map_or_else(|| Ok(PyDict::new(py)), PyDictMethods::copy)?,
        })
    }

    /// The value of `name`, taken out; None when it was not given. (A str key of a
    /// dict of our own: neither lookup nor removal can fail.)
    fn take(&self, name: &str) -> Option<Bound<'py, PyAny>> {
        let value = self.settings.get_item(name).ok().flatten()?;
        let _ = self.settings.del_item(name);
        Some(value)
    }

    fn text(&self, name: &'static str) -> Result<String, Error> {
        text_setting(name, self.take(name).as_ref())
    }

    fn int(&self, name: &'static str) -> Result<i64, Error> {
        int_setting(name, self.take(name).as_ref())
    }

    fn seconds(&self, name: &'static str) -> Result<f64, Error> {
        float_setting(name, self.take(name).as_ref())
    }

    fn fields(
        &self,
        name: &'static str,
        style: ValueStyle,
    ) -> Result<Vec<(String, Vec<u8>)>, Error> {
        encoded_fields(name, self.take(name).as_ref(), style)
    }

    fn flag(&self, name: &'static str) -> Result<bool, Error> {
        match self.take(name) {
            None => Ok(false),
            Some(v) => v
                .is_truthy()
                .map_err(|_| invalid(name, "must be true or false".into())),
        }
    }

    fn check_all_read(&self) -> Result<(), Error> {
        match self.settings.keys().iter().next() {
            None => Ok(()),
            Some(name) => Err(Error::InvalidConfig {
                field: "settings",
                problem: format!("has an unknown name {} (internal)", as_text(&name)),
            }),
        }
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map_or_else(|_| "object".into(), |n| py_str(&n).into_owned())
}

fn text_setting(field: &'static str, v: Option<&Bound<'_, PyAny>>) -> Result<String, Error> {
    match v {
        None => Ok(String::new()),
        Some(v) if v.is_none() => Ok(String::new()),
        Some(v) => match v.cast::<PyString>() {
            Ok(s) => Ok(py_str(s).into_owned()),
            Err(_) => Err(invalid(
                field,
                format!("must be a str, got {}", type_name(v)),
            )),
        },
    }
}

/// A file path as str or `os.PathLike`; empty when not given.
fn path_setting(field: &'static str, v: Option<&Bound<'_, PyAny>>) -> Result<String, Error> {
    match v.filter(|v| !v.is_none()) {
        None => Ok(String::new()),
        Some(v) => v
            .extract::<std::path::PathBuf>()
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|_| {
                invalid(
                    field,
                    format!("must be a path (str or os.PathLike), got {}", type_name(v)),
                )
            }),
    }
}

fn int_setting(field: &'static str, v: Option<&Bound<'_, PyAny>>) -> Result<i64, Error> {
    let Some(v) = v else {
        return Err(required(field));
    };
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(invalid(
            field,
            format!("must be an int, got {}", type_name(v)),
        ));
    }
    // Out of i64 range: saturate, so the range check names the real problem.
    Ok(v.extract::<i64>().unwrap_or(if v.gt(0).unwrap_or(false) {
        i64::MAX
    } else {
        i64::MIN
    }))
}

fn float_setting(field: &'static str, v: Option<&Bound<'_, PyAny>>) -> Result<f64, Error> {
    let Some(v) = v else {
        return Err(required(field));
    };
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(invalid(
            field,
            format!("must be a number of seconds, got {}", type_name(v)),
        ));
    }
    Ok(v.extract::<f64>().unwrap_or(f64::INFINITY))
}

/// A dict setting (`metadata`, `resource`), each value encoded once in `style`.
fn encoded_fields(
    field: &'static str,
    fields: Option<&Bound<'_, PyAny>>,
    style: ValueStyle,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let Some(m) = fields.filter(|m| !m.is_none()) else {
        return Ok(Vec::new());
    };
    let dict = m
        .cast::<PyDict>()
        .map_err(|_| invalid(field, format!("must be a dict, got {}", type_name(m))))?;
    Ok(dict
        .iter()
        .map(|(k, v)| (as_text(&k).into_owned(), encode_value(&v, style)))
        .collect())
}

/// `headers` as name/value pairs of str.
fn headers_setting(v: Option<&Bound<'_, PyAny>>) -> Result<Vec<(String, String)>, Error> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let dict = v.cast::<PyDict>().map_err(|_| {
        invalid(
            "headers",
            format!("must be a dict of str to str, got {}", type_name(v)),
        )
    })?;
    dict.iter()
        .map(
            |(k, v)| match (k.cast::<PyString>(), v.cast::<PyString>()) {
                (Ok(k), Ok(v)) => Ok((py_str(k).into_owned(), py_str(v).into_owned())),
                _ => Err(invalid(
                    "headers",
                    format!(
                        "must be a dict of str to str, got a {} key with a {} value",
                        type_name(&k),
                        type_name(&v)
                    ),
                )),
            },
        )
        .collect()
}

/// `unknown_service:<executable name>`, OpenTelemetry's service name when none is set.
fn default_service() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "python".to_owned());
    format!("unknown_service:{exe}")
}

/// The working directory with one trailing separator, or empty when unknown.
fn cwd_prefix(cwd: Option<&str>) -> String {
    match cwd {
        Some(c) if !c.is_empty() => format!("{}/", c.trim_end_matches(['/', '\\'])),
        _ => String::new(),
    }
}

/// Runs `f`, turning a panic into a `LogwellError`: a panic would reach the application
/// as `PanicException`, which is no `Exception` and escapes `logging`'s error handling.
fn guarded<T>(what: &'static str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::Internal {
            what,
            detail: panic_text(payload.as_ref()),
        }
        .into())
    })
}

/// A caller's timeout in seconds; `None`, negative or NaN mean "do not wait".
fn duration(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(86_400 * 365))
    }
}

#[pymethods]
impl Core {
    /// `settings`: every setting of `config::Settings` by name, plus `service`,
    /// `metadata`, `source_path` and `resource`; the Python side fills in the defaults.
    #[new]
    #[pyo3(signature = (*, reserved, cwd, on_error=None, on_flush=None, **settings))]
    fn new(
        reserved: Bound<'_, PyFrozenSet>,
        cwd: &str,
        on_error: Option<Py<PyAny>>,
        on_flush: Option<Py<PyAny>>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Core> {
        guarded("Core()", || {
            let given = Given::new(reserved.py(), settings)?;
            let protocol = Protocol::parse(&given.text("protocol")?)?;
            let style = protocol.value_style();
            let settings = Settings {
                api_key: given.text("api_key")?,
                endpoint: given.text("endpoint")?,
                endpoint_is_url: given.flag("endpoint_is_url")?,
                batch_size: given.int("batch_size")?,
                flush_interval: given.seconds("flush_interval")?,
                max_queue_size: given.int("max_queue_size")?,
                max_queue_bytes: given.int("max_queue_bytes")?,
                max_requests_per_minute: given.int("max_requests_per_minute")?,
                max_retries: given.int("max_retries")?,
                timeout: given.seconds("timeout")?,
                shutdown_timeout: given.seconds("shutdown_timeout")?,
                max_message_bytes: given.int("max_message_bytes")?,
                max_metadata_bytes: given.int("max_metadata_bytes")?,
                ca_file: path_setting("ca_file", given.take("ca_file").as_ref())?,
                spool_dir: path_setting("spool_dir", given.take("spool_dir").as_ref())?,
                max_spool_bytes: given.int("max_spool_bytes")?,
                protocol,
                headers: headers_setting(given.take("headers").as_ref())?,
                resource: given.fields("resource", style)?,
            };
            let config = Config::new(&settings)?;
            let service = given.text("service")?;
            let source_path = SourcePath::parse(&given.text("source_path")?)?;
            let static_metadata = given.fields("metadata", style)?;
            let storm = storm_guard(given.int("storm_limit")?)?;
            given.check_all_read()?;
            let lifecycle = Arc::new(Lifecycle::default());
            let events = PyEvents {
                on_error,
                on_flush,
                lifecycle: Arc::clone(&lifecycle),
            };
            let limits = config.limits;
            Ok(Core {
                generation: fork::generation(),
                storm,
                shipper: Arc::new(Shipper::new(config, Box::new(events), lifecycle)),
                encoder: RecordEncoder {
                    protocol,
                    service: (!service.is_empty()).then_some(service),
                    default_service: default_service(),
                    static_metadata,
                    source_path,
                    cwd_prefix: cwd_prefix(Some(cwd)),
                    shape: Arc::new(RecordShape::new(reserved.py())?),
                    reserved: reserved.unbind(),
                    limits,
                },
            })
        })
    }

    /// A `Core` on the same shipper (one buffer, thread and set of counters) with its
    /// own service, metadata and source path: a handler attached to a client.
    #[pyo3(signature = (*, service=None, metadata=None, source_path=None, cwd=None, reserved=None))]
    fn derive(
        &self,
        py: Python<'_>,
        service: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        source_path: Option<&Bound<'_, PyAny>>,
        cwd: Option<&str>,
        reserved: Option<Bound<'_, PyFrozenSet>>,
    ) -> PyResult<Core> {
        guarded("derive", || {
            let service = text_setting("service", service)?;
            let source_path = match text_setting("source_path", source_path)? {
                s if s.is_empty() => self.encoder.source_path,
                s => SourcePath::parse(&s)?,
            };
            Ok(Core {
                // The storm guard is the handler's own setting; a derived core has none.
                storm: None,
                generation: self.generation,
                shipper: Arc::clone(&self.shipper),
                encoder: RecordEncoder {
                    protocol: self.encoder.protocol,
                    service: if service.is_empty() {
                        self.encoder.service.clone()
                    } else {
                        Some(service)
                    },
                    default_service: self.encoder.default_service.clone(),
                    static_metadata: encoded_fields(
                        "metadata",
                        metadata,
                        self.encoder.protocol.value_style(),
                    )?,
                    source_path,
                    cwd_prefix: cwd
                        .map_or_else(|| self.encoder.cwd_prefix.clone(), |c| cwd_prefix(Some(c))),
                    reserved: reserved
                        .map_or_else(|| self.encoder.reserved.clone_ref(py), Bound::unbind),
                    limits: self.encoder.limits,
                    shape: Arc::clone(&self.encoder.shape),
                },
            })
        })
    }

    /// Queues one entry of the client API. Raises `LogwellError(VALIDATION_ERROR)` for
    /// an unknown level, an empty message or metadata that is not a dict; after close
    /// the entry is ignored and counted instead.
    #[pyo3(signature = (
        level, message, metadata=None, *, service=None, timestamp=None,
        source_file=None, line_number=None, call_site=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn log_entry(
        &self,
        level: &Bound<'_, PyAny>,
        message: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        service: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        source_file: Option<&Bound<'_, PyAny>>,
        line_number: Option<&Bound<'_, PyAny>>,
        call_site: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let call = ClientCall {
            level,
            message,
            metadata,
            service,
            timestamp,
            source_file,
            line_number,
        };
        let result = catch_unwind(AssertUnwindSafe(|| self.log_call(&call, call_site)));
        match result {
            Ok(result) => result,
            Err(payload) => {
                self.shipper.fail_record(&unencodable(payload.as_ref()));
                Ok(())
            }
        }
    }

    /// Encodes a `LogRecord` and queues it. Never blocks on the network. `context`:
    /// fields below the record's own `extra` in precedence (`log_context`). Returns
    /// false, queuing nothing, when the process forked since this core was made (a fork
    /// in C runs no Python hook): the caller makes a core of this process's own.
    #[pyo3(signature = (record, formatted=None, context=None))]
    fn emit(
        &self,
        record: &Bound<'_, PyAny>,
        formatted: Option<&Bound<'_, PyString>>,
        context: Option<&Bound<'_, PyDict>>,
    ) -> bool {
        if self.forked() {
            return false;
        }
        if self.shipper.state() != State::Open {
            self.shipper.count_ignored();
            return true;
        }
        let encoded = catch_unwind(AssertUnwindSafe(|| {
            let trace = current_trace(record.py());
            let storm = self.storm.as_ref();
            self.encoder
                .encode(record, formatted, context, trace, storm)
        }));
        match encoded {
            Ok(Some((level, json))) => self.shipper.push(json, level),
            Ok(None) => self.shipper.count_suppressed(),
            Err(payload) => self.shipper.fail_record(&unencodable(payload.as_ref())),
        }
        if self.storm.as_ref().is_some_and(StormGuard::due) {
            self.release_storm_summaries(record.py(), false);
        }
        true
    }

    /// Whether the process forked since this core was made (Python's fork or one in C):
    /// its queue and thread are the parent's. Such a core waits for nothing and touches
    /// none of its locks, which the fork may have copied held.
    #[getter]
    fn forked(&self) -> bool {
        self.generation != fork::generation()
    }

    /// Waits (without the GIL) until what was queued before the call is delivered.
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        if self.forked() {
            return Ok(true);
        }
        self.release_storm_summaries(py, true);
        guarded("flush", || {
            Ok(py.detach(|| self.shipper.flush(duration(timeout))))
        })
    }

    /// Stops taking entries and tells the flush thread to deliver what it can within
    /// `timeout`, without waiting for it: `close` then waits.
    fn begin_close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        if self.forked() {
            return Ok(());
        }
        self.release_storm_summaries(py, true);
        guarded("close", || {
            self.shipper.begin_close(duration(timeout));
            Ok(())
        })
    }

    /// Drains with a deadline and stops the flush thread; returns how many entries
    /// could not be delivered. Callbacks stop with it.
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<u64> {
        if self.forked() {
            return Ok(0);
        }
        self.release_storm_summaries(py, true);
        guarded("close", || {
            Ok(py.detach(|| self.shipper.close(duration(timeout))))
        })
    }

    /// Stops the flush thread (without the GIL: it may be waiting for it in a callback)
    /// before a `fork()`, keeping what it holds; false when it was busy and still runs.
    fn pause_for_fork(&self, py: Python<'_>) -> PyResult<bool> {
        if self.forked() {
            return Ok(true);
        }
        guarded("fork", || Ok(py.detach(|| self.shipper.pause(PAUSE_WAIT))))
    }

    /// Starts the thread `pause_for_fork` stopped again, in the parent after the fork.
    fn resume_after_fork(&self) -> PyResult<()> {
        if self.forked() {
            return Ok(());
        }
        guarded("fork", || {
            self.shipper.resume();
            Ok(())
        })
    }

    /// Queues every storm summary pending now (a flush does it too).
    fn release_summaries(&self, py: Python<'_>) {
        if !self.forked() {
            self.release_storm_summaries(py, true);
        }
    }

    /// What the server's replies have said so far (`replies`, `accepted`, `rejected`,
    /// `rejected_given`: replies that gave a rejected count, `reasons_given`), and in
    /// `reasons` the reasons given for rejected entries from the `since`th on.
    #[pyo3(signature = (since=u64::MAX))]
    fn server_said<'py>(&self, py: Python<'py>, since: u64) -> PyResult<Bound<'py, PyDict>> {
        let (said, reasons) = self.shipper.said_since(since);
        let d = PyDict::new(py);
        d.set_item("replies", said.replies)?;
        d.set_item("accepted", said.accepted)?;
        d.set_item("rejected", said.rejected)?;
        d.set_item("rejected_given", said.rejected_given)?;
        d.set_item("reasons_given", said.reasons_given)?;
        d.set_item("reasons", reasons)?;
        Ok(d)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded("stats", || self.stats_dict(py))
    }

    /// Counts one log call made after shutdown and ignored.
    fn count_ignored(&self) {
        self.shipper.count_ignored();
    }

    #[getter]
    fn queue_size(&self) -> u64 {
        self.shipper.queue_size()
    }

    /// Whether a close has begun: later entries are ignored and counted.
    #[getter]
    fn closed(&self) -> bool {
        self.shipper.state() != State::Open
    }

    /// The URL batches are sent to by POST (`/v1/ingest` or `/v1/logs`), its password hidden.
    #[getter]
    fn request_url(&self) -> String {
        config::shown_url(&self.shipper.config().url)
    }

    #[getter]
    fn protocol(&self) -> &'static str {
        self.encoder.protocol.name()
    }

    /// Whether requests carry credentials (the key or extra headers) unencrypted off
    /// this machine (plain http://).
    #[getter]
    fn sends_key_in_clear(&self) -> bool {
        let c = self.shipper.config();
        (!c.api_key.is_empty() || !c.headers.is_empty()) && config::sends_key_in_clear(&c.url)
    }

    fn __repr__(&self) -> String {
        format!(
            "<logwell_handler._core.Core {}>",
            config::shown_url(&self.shipper.config().url)
        )
    }
}

impl Core {
    /// A client call: checked, past the storm guard (when there is one and `call_site`
    /// is given), encoded and queued.
    fn log_call(
        &self,
        call: &ClientCall<'_, '_>,
        call_site: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = call.level.py();
        if self.shipper.state() != State::Open {
            self.shipper.count_ignored();
            return Ok(());
        }
        match self.encode_client(call, call_site)? {
            Some((level, json)) => self.shipper.push(json, level), // after close: ignored
            None => self.shipper.count_suppressed(),
        }
        if self.storm.as_ref().is_some_and(StormGuard::due) {
            self.release_storm_summaries(py, false);
        }
        Ok(())
    }

    /// A client call's entry; None when the storm guard keeps it back.
    fn encode_client(
        &self,
        call: &ClientCall<'_, '_>,
        call_site: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<(Level, Vec<u8>)>> {
        let py = call.level.py();
        let entry_err = |what: &str, v: &Bound<'_, PyAny>| {
            Error::InvalidEntry(format!("{what}, got {}", type_name(v)))
        };
        let level = call
            .level
            .cast::<PyString>()
            .map_err(|_| entry_err("level must be a str", call.level))?;
        let message = call
            .message
            .cast::<PyString>()
            .map_err(|_| entry_err("message must be a str", call.message))?;
        let metadata = match call.metadata.filter(|m| !m.is_none()) {
            None => None,
            Some(m) => Some(
                m.cast::<PyDict>()
                    .map_err(|_| entry_err("metadata must be a dict", m))?,
            ),
        };
        let service = optional_text("service", call.service)?;
        let source_file = optional_text("source_file", call.source_file)?;
        let line_number = match call.line_number.filter(|n| !n.is_none()) {
            None => None,
            Some(n) => Some(n.extract::<i64>()?),
        };
        // A str is passed through; the Python side turns it into seconds for OTLP.
        let text;
        let timestamp = match call.timestamp.filter(|t| !t.is_none()) {
            None => None,
            Some(t) if t.is_instance_of::<PyFloat>() => {
                Some(Timestamp::Seconds(t.extract::<f64>()?))
            }
            Some(t) => {
                text = py_str(
                    t.cast::<PyString>()
                        .map_err(|_| entry_err("timestamp must be an ISO 8601 str", t))?,
                );
                Some(Timestamp::Text(&text))
            }
        };
        // A call the encoder will refuse is refused, never held back: its mistake is
        // the caller's to hear of, every time.
        let valid = Level::parse(&py_str(level)).is_some() && !py_str(message).trim().is_empty();
        if let (Some(guard), Some(site), true) = (&self.storm, call_site, valid) {
            let key = combine(&[
                hash_of(Some(level.as_any())),
                hash_of(Some(message.as_any())),
                hash_of(call.service),
                hash_of(Some(site)),
            ]);
            if let Verdict::Suppress(replaced) = guard.check(key, now_seconds(), || call.kept()) {
                drop(replaced); // the guard's lock is released: Python code may run
                return Ok(None);
            }
        }
        let (level_kind, json) = self.encoder.encode_call(
            &LogCall {
                level: &py_str(level),
                message: &py_str(message),
                metadata,
                service: service.as_deref(),
                timestamp,
                source_file: source_file.as_deref(),
                line_number,
            },
            current_trace(py),
        )?;
        Ok(Some((level_kind, json)))
    }

    /// The summary of a client call site: its last call kept back, with `storm` added to
    /// its metadata, at the time of that call.
    fn summary_of_call(
        &self,
        py: Python<'_>,
        args: &[Option<Py<PyAny>>; 7],
        storm: &Bound<'_, PyDict>,
        last: f64,
    ) -> PyResult<Option<(Level, Vec<u8>)>> {
        let bound: Vec<Bound<'_, PyAny>> = args
            .iter()
            .map(|a| {
                a.as_ref()
                    .map_or_else(|| py.None().into_bound(py), |a| a.bind(py).clone())
            })
            .collect();
        let metadata = match bound[2].cast::<PyDict>() {
            Ok(given) => given.copy()?,
            Err(_) => PyDict::new(py),
        };
        metadata.set_item("storm", storm)?;
        let at = if bound[4].is_none() {
            PyFloat::new(py, last).into_any()
        } else {
            bound[4].clone()
        };
        let call = ClientCall {
            level: &bound[0],
            message: &bound[1],
            metadata: Some(metadata.as_any()),
            service: Some(&bound[3]),
            timestamp: Some(&at),
            source_file: Some(&bound[5]),
            line_number: Some(&bound[6]),
        };
        self.encode_client(&call, None)
    }

    /// Queues the storm summaries of the windows that ended, or of all with `all` (a
    /// flush or a close: what they wait for includes the summaries). Each is the last
    /// record its site kept back, with `storm` in its metadata: how many it stands for,
    /// and the first and last time.
    fn release_storm_summaries(&self, py: Python<'_>, all: bool) {
        let Some(guard) = &self.storm else { return };
        for summary in guard.take_due(all) {
            let encoded = catch_unwind(AssertUnwindSafe(
                || -> PyResult<Option<(Level, Vec<u8>)>> {
                    let storm = summary_context(py, &summary)?;
                    match &summary.kept {
                        Kept::Call(args) => self.summary_of_call(py, args, &storm, summary.last),
                        Kept::Record {
                            record,
                            formatted,
                            context,
                        } => {
                            let fields = match context {
                                Some(context) => context.bind(py).copy()?,
                                None => PyDict::new(py),
                            };
                            fields.set_item("storm", storm)?;
                            let formatted = formatted.as_ref().map(|f| f.bind(py));
                            let record = record.bind(py);
                            Ok(self
                                .encoder
                                .encode(record, formatted, Some(&fields), None, None))
                        }
                    }
                },
            ));
            match encoded {
                Ok(Ok(Some((level, json)))) => self.shipper.push_summary(json, level),
                Ok(Ok(None)) => {}
                // Never silently: the summary stood for records that are counted.
                Ok(Err(e)) => self.shipper.fail_record(&Error::Internal {
                    what: "storm summary",
                    detail: e.to_string(),
                }),
                Err(payload) => self.shipper.fail_record(&unencodable(payload.as_ref())),
            }
        }
    }

    fn stats_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.shipper.stats();
        let d = PyDict::new(py);
        d.set_item("queued", s.queued())?;
        d.set_item("enqueued", s.enqueued)?;
        d.set_item("sent", s.sent)?;
        d.set_item("dropped_overflow", s.dropped_overflow)?;
        let by_level = PyDict::new(py);
        for (level, n) in Level::ALL.into_iter().zip(s.dropped_by_level) {
            by_level.set_item(level.as_str(), n)?;
        }
        d.set_item("dropped_by_level", by_level)?;
        d.set_item("dropped_at_close", s.dropped_at_close)?;
        d.set_item("failed", s.failed)?;
        d.set_item("rejected_by_server", s.rejected_by_server)?;
        d.set_item("retries", s.retries)?;
        d.set_item("rate_limited_waits", s.rate_limited_waits)?;
        d.set_item("rate_limited_wait_ms", s.rate_limited_wait_ms)?;
        d.set_item("paced_waits", s.paced_waits)?;
        d.set_item("paced_wait_ms", s.paced_wait_ms)?;
        d.set_item("batches", s.batches)?;
        d.set_item("bytes_sent", s.bytes_sent)?;
        d.set_item("ignored_after_close", s.after_close)?;
        d.set_item("storm_suppressed", s.storm_suppressed)?;
        d.set_item("storm_summaries", s.storm_summaries)?;
        d.set_item("spooled", s.spooled)?;
        d.set_item("replayed", s.replayed)?;
        d.set_item("replay_failed", s.replay_failed)?;
        d.set_item("spool_bytes", s.spool_bytes)?;
        d.set_item("dropped_spool_full", s.dropped_spool_full)?;
        d.set_item("spool_corrupt", s.spool_corrupt)?;
        d.set_item("spool_errors", s.spool_errors)?;
        match s.last_error {
            Some(e) => {
                let last = PyDict::new(py);
                last.set_item("code", e.code.as_str())?;
                last.set_item("message", e.message)?;
                d.set_item("last_error", last)?;
            }
            None => d.set_item("last_error", py.None())?,
        }
        Ok(d)
    }
}

/// The error a record that could not be encoded is counted and reported with.
fn unencodable(payload: &(dyn std::any::Any + Send)) -> Error {
    Error::InvalidEntry(format!(
        "a record could not be encoded and was counted as failed: {}",
        panic_text(payload)
    ))
}

fn storm_guard(limit: i64) -> Result<Option<StormGuard>, Error> {
    match u32::try_from(limit) {
        Ok(0) => Ok(None),
        Ok(per_second) if per_second <= 1_000_000 => Ok(Some(StormGuard::new(per_second))),
        _ => Err(invalid(
            "storm_limit",
            format!("must be an integer from 0 (off) to 1000000 records a second, got {limit}"),
        )),
    }
}

/// `{"suppressed", "first", "last", "window_seconds"}`, times in ISO 8601: the
/// summary's `storm` field.
fn summary_context<'py>(py: Python<'py>, summary: &Summary) -> PyResult<Bound<'py, PyDict>> {
    let iso = |seconds: f64| {
        let mut out = Vec::with_capacity(27);
        crate::protocol::logwell::write_timestamp(&mut out, seconds);
        String::from_utf8_lossy(&out).into_owned()
    };
    let storm = PyDict::new(py);
    storm.set_item("suppressed", summary.suppressed)?;
    storm.set_item("first", iso(summary.first))?;
    storm.set_item("last", iso(summary.last))?;
    storm.set_item("window_seconds", WINDOW_SECONDS)?;
    Ok(storm)
}

/// A client call's optional text argument.
fn optional_text(field: &str, v: Option<&Bound<'_, PyAny>>) -> Result<Option<String>, Error> {
    match v.filter(|v| !v.is_none()) {
        None => Ok(None),
        Some(v) => match v.cast::<PyString>() {
            Ok(text) => Ok(Some(py_str(text).into_owned()).filter(|t| !t.is_empty())),
            Err(_) => Err(Error::InvalidEntry(format!(
                "{field} must be a str, got {}",
                type_name(v)
            ))),
        },
    }
}

/// A client call's arguments, as given.
struct ClientCall<'a, 'py> {
    level: &'a Bound<'py, PyAny>,
    message: &'a Bound<'py, PyAny>,
    metadata: Option<&'a Bound<'py, PyAny>>,
    service: Option<&'a Bound<'py, PyAny>>,
    timestamp: Option<&'a Bound<'py, PyAny>>,
    source_file: Option<&'a Bound<'py, PyAny>>,
    line_number: Option<&'a Bound<'py, PyAny>>,
}

impl ClientCall<'_, '_> {
    /// The arguments, kept for a storm summary: references only, nothing made.
    fn kept(&self) -> Kept {
        let keep = |v: Option<&Bound<'_, PyAny>>| v.map(|v| v.clone().unbind());
        Kept::Call(Box::new([
            keep(Some(self.level)),
            keep(Some(self.message)),
            keep(self.metadata),
            keep(self.service),
            keep(self.timestamp),
            keep(self.source_file),
            keep(self.line_number),
        ]))
    }
}

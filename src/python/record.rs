//! `logging.LogRecord` -> encoded entry, in one pass under the GIL.
//!
//! A record from `logging` never fails here: a value that cannot be read or encoded goes
//! out as its `repr()` (or a placeholder naming its type), so one bad field never costs
//! the record. Only a direct client call with an argument the server would refuse (a bad
//! level, an empty message) is refused.

use std::borrow::Cow;
use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyString, PyTuple,
};

use super::record_view::{RecordShape, RecordView, READ_FOR_LOGWELL, READ_FOR_OTLP};
use super::storm::{record_site, Kept, StormGuard, Verdict};
use crate::errors::Error;
use crate::json::{JsonWriter, ValueStyle, ValueWriter};
use crate::protocol::logwell::{self, Level, Timestamp};
use crate::protocol::otlp::{self, attribute, OtlpHead};
use crate::protocol::Protocol;
use crate::record::{EntryWriter, Limits, TraceContext};

/// Containers nested deeper than this go out as their `repr()`.
const MAX_DEPTH: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePath {
    Relative,
    Absolute,
    Filename,
}

impl SourcePath {
    pub fn parse(s: &str) -> Result<SourcePath, Error> {
        match s {
            "relative" => Ok(SourcePath::Relative),
            "absolute" => Ok(SourcePath::Absolute),
            "filename" => Ok(SourcePath::Filename),
            other => Err(Error::InvalidConfig {
                field: "source_path",
                problem: format!(
                    "must be one of 'relative', 'absolute', 'filename', got {other:?}"
                ),
            }),
        }
    }
}

/// OTLP's scope for entries of the client API, which have no logger.
const CLIENT_SCOPE: &str = "logwell_handler";

/// What every entry of one handler shares, fixed at construction.
pub struct RecordEncoder {
    pub protocol: Protocol,
    pub service: Option<String>,
    /// OTLP's `service.name` when no service is given: `unknown_service:<executable>`,
    /// as OpenTelemetry's SDKs name it.
    pub default_service: String,
    /// The handler's `metadata`, each value already encoded in the protocol's style.
    pub static_metadata: Vec<(String, Vec<u8>)>,
    pub source_path: SourcePath,
    /// The working directory at construction, with a trailing separator.
    pub cwd_prefix: String,
    /// Names of the standard `LogRecord` attributes: everything else is `extra`.
    pub reserved: Py<PyFrozenSet>,
    pub limits: Limits,
    pub shape: Arc<RecordShape>,
}

/// The text of a Python str; each lone surrogate becomes one U+FFFD instead of failing.
pub fn py_str<'a>(s: &'a Bound<'_, PyString>) -> Cow<'a, str> {
    s.to_cow()
        .unwrap_or_else(|_| Cow::Owned(replace_surrogates(s)))
}

/// A str holding lone surrogates, each replaced by one U+FFFD. Through UTF-16, where a
/// lone surrogate is one unit: its UTF-8 form (`surrogatepass`) is three bytes, which
/// `to_string_lossy` would turn into three.
fn replace_surrogates(s: &Bound<'_, PyString>) -> String {
    let units = s
        .call_method1(intern!(s.py(), "encode"), ("utf-16-le", "surrogatepass"))
        .ok()
        .and_then(|b| b.cast_into::<PyBytes>().ok());
    let Some(units) = units else {
        return s.to_string_lossy().into_owned();
    };
    let units = units
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// `str(obj)`, or its `repr()`, or a placeholder naming its type: never an error.
fn display(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(s) = obj.cast::<PyString>() {
        return py_str(s).into_owned();
    }
    obj.str()
        .or_else(|_| obj.repr())
        .map_or_else(|_| unrepresentable(obj), |s| py_str(&s).into_owned())
}

/// A value as text, borrowed when it is a str (a dict key, a logger or level name, a
/// path), else `str(value)` as `display` makes it.
pub fn as_text<'a>(value: &'a Bound<'_, PyAny>) -> Cow<'a, str> {
    match value.cast::<PyString>() {
        Ok(s) => py_str(s),
        Err(_) => Cow::Owned(display(value)),
    }
}

/// `as_text` of an attribute a record may lack: empty when it does.
fn attr_text<'a>(value: Option<&'a Bound<'_, PyAny>>) -> Cow<'a, str> {
    value.map_or(Cow::Borrowed(""), as_text)
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map_or_else(|_| unrepresentable(obj), |s| py_str(&s).into_owned())
}

fn unrepresentable(obj: &Bound<'_, PyAny>) -> String {
    let type_name = obj
        .get_type()
        .name()
        .map_or_else(|_| "object".into(), |n| display(n.as_any()));
    format!("<unrepresentable {type_name}>")
}

/// Encodes any Python value as JSON: str, int, float, bool, None, dicts and
/// lists/tuples as themselves; anything else as its `repr()`.
pub fn write_value(w: &mut ValueWriter<'_>, v: &Bound<'_, PyAny>, depth: u32) {
    if let Ok(s) = v.cast::<PyString>() {
        w.string(&py_str(s));
    } else if v.is_none() {
        w.null();
    } else if let Ok(b) = v.cast::<PyBool>() {
        w.bool(b.is_true());
    } else if v.is_instance_of::<PyInt>() {
        match v.extract::<i64>() {
            Ok(n) => w.int(n),
            Err(_) => w.big_int(&display(v)),
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        w.float(f.value());
    } else if depth < MAX_DEPTH && v.is_instance_of::<PyDict>() {
        write_dict(w, v, depth);
    } else if depth < MAX_DEPTH && (v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>()) {
        write_sequence(w, v, depth);
    } else {
        w.string(&repr(v));
    }
}

fn write_dict(w: &mut ValueWriter<'_>, v: &Bound<'_, PyAny>, depth: u32) {
    let Ok(d) = v.cast::<PyDict>() else {
        return w.string(&repr(v));
    };
    w.begin_map();
    // A snapshot: writing a value may run its `__repr__`, which may change the dict.
    for (k, val) in snapshot(d) {
        w.map_key(&as_text(&k));
        write_value(w, &val, depth + 1);
    }
    w.end_map();
}

/// The items of `d` as they are now; changing `d` later changes nothing here.
fn snapshot<'py>(d: &Bound<'py, PyDict>) -> Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    d.items()
        .iter()
        .filter_map(|item| item.extract().ok())
        .collect()
}

fn write_sequence(w: &mut ValueWriter<'_>, v: &Bound<'_, PyAny>, depth: u32) {
    let Ok(iter) = v.try_iter() else {
        return w.string(&repr(v));
    };
    w.begin_list();
    for item in iter {
        match item {
            Ok(item) => write_value(w, &item, depth + 1),
            Err(_) => w.null(),
        }
    }
    w.end_list();
}

/// The encoded JSON of a value, for values encoded once at construction.
pub fn encode_value(v: &Bound<'_, PyAny>, style: ValueStyle) -> Vec<u8> {
    let mut json = JsonWriter::with_capacity(32);
    write_value(&mut ValueWriter::new(&mut json, style), v, 0);
    json.into_bytes()
}

/// `record.getMessage()`, made here for a plain `LogRecord` (the same `str(msg) % args`,
/// without a Python frame) and called for any other class, which may override it.
fn message<'py>(
    record: &Bound<'py, PyAny>,
    view: &RecordView<'py>,
    shape: &RecordShape,
) -> PyResult<Bound<'py, PyString>> {
    let py = record.py();
    if !record.get_type().is(shape.class.bind(py)) {
        return record.call_method0(intern!(py, "getMessage"))?.str();
    }
    let msg = match &view.msg {
        Some(m) => m.str()?,
        None => intern!(py, "None").clone(),
    };
    match &view.args {
        Some(args) if args.is_truthy()? => msg.rem(args)?.str(),
        _ => Ok(msg),
    }
}

/// A record's message: the handler's formatter output, or `getMessage()`'s, which is
/// kept in `computed`. When `getMessage()` fails, `str(msg)`, and why.
fn record_message<'a, 'py>(
    record: &Bound<'py, PyAny>,
    formatted: Option<&'a Bound<'py, PyString>>,
    view: &RecordView<'py>,
    shape: &RecordShape,
    computed: &'a mut Option<Bound<'py, PyString>>,
) -> (Cow<'a, str>, Option<String>) {
    if let Some(f) = formatted {
        return (py_str(f), None);
    }
    match message(record, view, shape) {
        Ok(m) => (py_str(computed.insert(m)), None),
        Err(e) => {
            let error = display(e.value(record.py()).as_any());
            let text = view.msg.as_ref().map(display).unwrap_or_default();
            (Cow::Owned(text), Some(error))
        }
    }
}

impl RecordEncoder {
    /// Encodes a `LogRecord` (or any object with its attributes). `formatted` is the
    /// handler's formatter output, used as the message when the user set a formatter;
    /// `context` holds the `log_context` fields, below `extra` in precedence; `trace` is
    /// the span the record was logged in.
    pub fn encode(
        &self,
        record: &Bound<'_, PyAny>,
        formatted: Option<&Bound<'_, PyString>>,
        context: Option<&Bound<'_, PyDict>>,
        trace: Option<TraceContext>,
        guard: Option<&StormGuard>,
    ) -> Option<(Level, Vec<u8>)> {
        let py = record.py();
        let shape = &*self.shape;
        let wanted = match self.protocol {
            Protocol::Otlp => READ_FOR_OTLP,
            Protocol::Logwell => READ_FOR_LOGWELL,
        };
        let view = RecordView::read(record, shape, self.reserved.bind(py), wanted);
        let levelno = view
            .levelno
            .as_ref()
            .and_then(|v| v.extract::<i64>().ok())
            .unwrap_or(20);
        let created = view
            .created
            .as_ref()
            .and_then(|v| v.extract::<f64>().ok())
            .filter(|c| c.is_finite())
            .unwrap_or_else(now_seconds);
        if let Some(guard) = guard {
            let keep = || Kept::Record {
                record: record.clone().unbind(),
                formatted: formatted.map(|f| f.clone().unbind()),
                context: context.map(|c| c.clone().unbind()),
            };
            if let Verdict::Suppress(replaced) =
                guard.check(record_site(&view, formatted), created, keep)
            {
                drop(replaced); // the guard's lock is released: Python code may run
                return None;
            }
        }
        let mut computed = None;
        let (message, message_error) =
            record_message(record, formatted, &view, shape, &mut computed);
        let mut entry = self.record_head(&view, levelno, created, &message, trace);
        self.write_record_source(&mut entry, &view);
        self.write_record_fields(&mut entry, &view, message_error.as_deref(), context, trace);
        Some((Level::from_levelno(levelno), entry.finish()))
    }

    /// An entry's head, per protocol.
    fn record_head(
        &self,
        view: &RecordView<'_>,
        levelno: i64,
        created: f64,
        message: &str,
        trace: Option<TraceContext>,
    ) -> EntryWriter {
        match self.protocol {
            Protocol::Otlp => self.otlp_entry(
                self.service.as_deref(),
                &attr_text(view.name.as_ref()),
                created,
                (
                    otlp::severity_number(levelno),
                    &attr_text(view.levelname.as_ref()),
                ),
                message,
                trace,
            ),
            Protocol::Logwell => self.logwell_entry(
                Level::from_levelno(levelno),
                message,
                Timestamp::Seconds(created),
                self.service.as_deref(),
            ),
        }
    }

    /// A Logwell entry's head, with `service` if there is one.
    fn logwell_entry(
        &self,
        level: Level,
        message: &str,
        timestamp: Timestamp<'_>,
        service: Option<&str>,
    ) -> EntryWriter {
        let mut entry = EntryWriter::logwell(level, message, timestamp, self.limits);
        if let Some(service) = service {
            entry.service(service);
        }
        entry
    }

    /// An OTLP record's head, sent under `service` (else OpenTelemetry's default name).
    fn otlp_entry(
        &self,
        service: Option<&str>,
        scope: &str,
        seconds: f64,
        (severity_number, severity_text): (u8, &str),
        body: &str,
        trace: Option<TraceContext>,
    ) -> EntryWriter {
        let head = OtlpHead {
            service: service.unwrap_or(&self.default_service),
            scope,
            time_unix_nano: unix_nanos(seconds),
            observed_time_unix_nano: unix_nanos(now_seconds()),
            severity_number,
            severity_text,
            body,
            trace,
        };
        EntryWriter::otlp(&head, self.limits)
    }

    /// The file and line of the call: in OTLP, the first attributes.
    fn write_record_source(&self, entry: &mut EntryWriter, view: &RecordView<'_>) {
        let path = attr_text(view.pathname.as_ref());
        let line = view
            .lineno
            .as_ref()
            .and_then(|v| v.extract::<i64>().ok())
            .unwrap_or(0);
        entry.source(self.source_file(&path), line);
    }

    /// A record's fields, highest precedence first: the first writer of a key wins.
    fn write_record_fields(
        &self,
        entry: &mut EntryWriter,
        view: &RecordView<'_>,
        message_error: Option<&str>,
        context: Option<&Bound<'_, PyDict>>,
        trace: Option<TraceContext>,
    ) {
        let otlp = self.protocol == Protocol::Otlp;
        if otlp {
            write_code_attributes(entry, view);
        }
        if let Some(exc_info) = &view.exc_info {
            write_exception(entry, otlp, exc_info, view.exc_text.as_ref());
        }
        if let Some(stack) = &view.stack_info {
            write_stack(entry, otlp, stack);
        }
        if let Some(error) = message_error {
            write_message_error(entry, error, view.args.as_ref());
        }
        write_extras(entry, &view.extras);
        // The context is ours: `log_context`'s own dict, handed out read-only, or the
        // one made for a structlog event. Nothing else can change it: no snapshot.
        if let Some(context) = context {
            write_fields(entry, context.iter());
        }
        if !otlp {
            write_trace_fields(entry, trace);
            // In OTLP the logger is the scope.
            if let Some(name) = &view.name {
                if let Some(mut w) = entry.field(logwell::field::LOGGER) {
                    write_value(&mut w, name, 0);
                }
            }
        }
        self.write_static_metadata(entry);
    }

    /// Encodes a direct log call (the client API). Unlike records from `logging`, a bad
    /// argument is the caller's mistake and is refused with a clear error.
    pub fn encode_call(
        &self,
        call: &LogCall<'_, '_>,
        trace: Option<TraceContext>,
    ) -> Result<(Level, Vec<u8>), Error> {
        let level = Level::parse(call.level).ok_or_else(|| {
            Error::InvalidEntry(format!(
                "level must be one of 'debug', 'info', 'warn', 'error', 'fatal', got {:?}",
                call.level
            ))
        })?;
        if call.message.trim().is_empty() {
            return Err(Error::InvalidEntry(
                "message must be a non-empty string".into(),
            ));
        }
        let timestamp = call
            .timestamp
            .unwrap_or_else(|| Timestamp::Seconds(now_seconds()));
        let service = call.service.or(self.service.as_deref());
        let mut entry = match self.protocol {
            Protocol::Logwell => self.logwell_entry(level, call.message, timestamp, service),
            Protocol::Otlp => {
                let Timestamp::Seconds(seconds) = timestamp else {
                    return Err(Error::InvalidEntry(
                        "timestamp must be seconds since the epoch for protocol 'otlp'".into(),
                    ));
                };
                self.otlp_entry(
                    service,
                    CLIENT_SCOPE,
                    seconds,
                    otlp::level_severity(level),
                    call.message,
                    trace,
                )
            }
        };
        if let Some(file) = call.source_file {
            entry.source(self.source_file(file), call.line_number.unwrap_or(0));
        }
        if let Some(metadata) = call.metadata {
            write_fields(&mut entry, snapshot(metadata));
        }
        if self.protocol == Protocol::Logwell {
            write_trace_fields(&mut entry, trace);
        }
        self.write_static_metadata(&mut entry);
        Ok((level, entry.finish()))
    }

    fn write_static_metadata(&self, entry: &mut EntryWriter) {
        for (key, value) in &self.static_metadata {
            if let Some(mut w) = entry.field(key) {
                w.raw(value);
            }
        }
    }

    fn source_file<'a>(&self, path: &'a str) -> &'a str {
        match self.source_path {
            SourcePath::Absolute => path,
            SourcePath::Relative => match path.strip_prefix(&self.cwd_prefix) {
                Some(rel) if !self.cwd_prefix.is_empty() && !rel.is_empty() => rel,
                _ => path,
            },
            SourcePath::Filename => path.rsplit(['/', '\\']).next().unwrap_or(path),
        }
    }
}

/// The span's ids as metadata, for Logwell's simple API (OTLP has fields of its own).
fn write_trace_fields(entry: &mut EntryWriter, trace: Option<TraceContext>) {
    let Some(trace) = trace else { return };
    if let Some(mut w) = entry.field(logwell::field::TRACE_ID) {
        w.string(trace.trace_id_hex().as_str());
    }
    if let Some(mut w) = entry.field(logwell::field::SPAN_ID) {
        w.string(trace.span_id_hex().as_str());
    }
}

/// OTLP's code attributes a record carries besides its source: function and thread.
fn write_code_attributes(entry: &mut EntryWriter, view: &RecordView<'_>) {
    let attributes = [
        (attribute::FUNCTION, &view.func_name),
        (attribute::THREAD_ID, &view.thread),
        (attribute::THREAD_NAME, &view.thread_name),
    ];
    for (key, value) in attributes {
        if let Some(value) = value {
            if let Some(mut w) = entry.field(key) {
                write_value(&mut w, value, 0);
            }
        }
    }
}

/// The record's `stack_info`, as its text.
fn write_stack(entry: &mut EntryWriter, otlp: bool, stack: &Bound<'_, PyAny>) {
    let key = if otlp {
        attribute::STACKTRACE
    } else {
        logwell::field::STACK
    };
    if let Some(mut w) = entry.field(key) {
        w.string(&display(stack));
    }
}

/// Why `getMessage()` failed, and the `args` it failed on.
fn write_message_error(entry: &mut EntryWriter, error: &str, args: Option<&Bound<'_, PyAny>>) {
    if let Some(mut w) = entry.field("message_error") {
        w.string(&format!("formatting the message failed: {error}"));
    }
    if let Some(args) = args {
        if let Some(mut w) = entry.field("args") {
            w.string(&repr(args));
        }
    }
}

/// A record's `extra` fields as metadata.
fn write_extras(entry: &mut EntryWriter, extras: &[(Bound<'_, PyAny>, Bound<'_, PyAny>)]) {
    for (key, value) in extras {
        let name = as_text(key);
        // loguru hands its bound fields over as one `extra` dict: they are metadata.
        if name == "extra" {
            if let Ok(fields) = value.cast::<PyDict>() {
                write_fields(entry, snapshot(fields));
                continue;
            }
        }
        if let Some(mut w) = entry.field(&name) {
            write_value(&mut w, value, 0);
        }
    }
}

/// Each of `fields` as a metadata field, unless a field of that name came first. A dict
/// the caller's code holds is passed as a `snapshot`: writing a value may run its
/// `__repr__`, which may change that dict.
fn write_fields<'py>(
    entry: &mut EntryWriter,
    fields: impl IntoIterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
) {
    for (key, value) in fields {
        if let Some(mut w) = entry.field(&as_text(&key)) {
            write_value(&mut w, &value, 0);
        }
    }
}

/// One direct log call, its arguments already checked for type by the edge.
pub struct LogCall<'a, 'py> {
    pub level: &'a str,
    pub message: &'a str,
    pub metadata: Option<&'a Bound<'py, PyDict>>,
    pub service: Option<&'a str>,
    pub timestamp: Option<Timestamp<'a>>,
    pub source_file: Option<&'a str>,
    pub line_number: Option<i64>,
}

/// The exception of `exc_info`: `{"type", "message", "stacktrace"}` in metadata, or the
/// `exception.*` attributes in OTLP. The traceback text is the one a formatter already
/// cached in `exc_text` when there is one.
fn write_exception(
    entry: &mut EntryWriter,
    otlp: bool,
    exc_info: &Bound<'_, PyAny>,
    exc_text: Option<&Bound<'_, PyAny>>,
) {
    let py = exc_info.py();
    let Ok(parts) = exc_info.cast::<PyTuple>() else {
        return;
    };
    let (Ok(exc_type), Ok(exc_value), Ok(tb)) =
        (parts.get_item(0), parts.get_item(1), parts.get_item(2))
    else {
        return;
    };
    if exc_value.is_none() {
        return; // logger.exception() outside an except block
    }
    let type_name = exc_type
        .getattr(intern!(py, "__qualname__"))
        .map_or_else(|_| display(&exc_type), |q| display(&q));
    let module = exc_type
        .getattr(intern!(py, "__module__"))
        .map(|m| display(&m))
        .unwrap_or_default();
    let type_name = if module.is_empty() || module == "builtins" {
        type_name
    } else {
        format!("{module}.{type_name}")
    };
    let cached = exc_text.map(display);
    // loguru sets `exc_text` to "\n" (its message holds the traceback): not a cache.
    let stacktrace = cached.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| {
        py.import(intern!(py, "traceback"))
            .and_then(|m| {
                m.call_method1(intern!(py, "format_exception"), (exc_type, &exc_value, tb))
            })
            .and_then(|lines| PyString::new(py, "").call_method1(intern!(py, "join"), (lines,)))
            .map(|s| display(&s))
            .unwrap_or_default()
    });
    let values = [
        type_name.as_str(),
        &display(&exc_value),
        stacktrace.trim_end(),
    ];
    if otlp {
        for (key, value) in attribute::EXCEPTION.into_iter().zip(values) {
            if let Some(mut w) = entry.field(key) {
                w.string(value);
            }
        }
        return;
    }
    let Some(mut w) = entry.field(logwell::field::EXCEPTION) else {
        return;
    };
    w.begin_map();
    for (name, value) in logwell::field::EXCEPTION_PARTS.into_iter().zip(values) {
        w.map_key(name);
        w.string(value);
    }
    w.end_map();
}

/// Seconds since the epoch as whole nanoseconds, at the microsecond precision a Python
/// float timestamp really has; 0 for times before the epoch.
fn unix_nanos(seconds: f64) -> u64 {
    let micros = (seconds * 1e6).round();
    if micros.is_finite() && micros > 0.0 {
        (micros as u64).saturating_mul(1000)
    } else {
        0
    }
}

pub fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

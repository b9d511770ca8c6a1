//! What the encoder needs from a `LogRecord`, read in one pass over its `__dict__`.
//!
//! `LogRecord.__init__` sets the same attributes in the same order on every record, and
//! their names are the same interned strings each time; `extra` fields come after them.
//! So the i-th key of a record's `__dict__` is, nearly always, the very object that was
//! the i-th key of a reference record, and a pointer comparison tells which attribute it
//! is: no dict lookup per attribute, no set lookup per key to find the extras. Any key
//! out of that order (a subclass, a formatter's `message`) is looked up by name instead.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyString, PyType};

/// The attributes the encoder reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attr {
    Name,
    Msg,
    Args,
    Levelno,
    Pathname,
    ExcInfo,
    ExcText,
    StackInfo,
    Lineno,
    Created,
    Levelname,
    FuncName,
    Thread,
    ThreadName,
    /// A standard attribute the encoder does not use.
    Unused,
}

impl Attr {
    const READ: [(&'static str, Attr); 14] = [
        ("name", Attr::Name),
        ("msg", Attr::Msg),
        ("args", Attr::Args),
        ("levelno", Attr::Levelno),
        ("pathname", Attr::Pathname),
        ("exc_info", Attr::ExcInfo),
        ("exc_text", Attr::ExcText),
        ("stack_info", Attr::StackInfo),
        ("lineno", Attr::Lineno),
        ("created", Attr::Created),
        ("levelname", Attr::Levelname),
        ("funcName", Attr::FuncName),
        ("thread", Attr::Thread),
        ("threadName", Attr::ThreadName),
    ];

    /// Those only the OTLP encoder uses.
    const OTLP_ONLY: u16 =
        Attr::Levelname.bit() | Attr::FuncName.bit() | Attr::Thread.bit() | Attr::ThreadName.bit();

    /// Its bit in a set of attributes already read.
    const fn bit(self) -> u16 {
        match self {
            Attr::Unused => 0,
            read => 1 << read as u16,
        }
    }

    fn of(name: &str) -> Attr {
        Attr::READ
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Attr::Unused, |&(_, a)| a)
    }
}

/// `logging.LogRecord` and the keys of a plain record's `__dict__`, in order.
pub struct RecordShape {
    pub class: Py<PyType>,
    keys: Vec<(Py<PyString>, Attr)>,
}

impl RecordShape {
    pub fn new(py: Python<'_>) -> PyResult<RecordShape> {
        let class = py
            .import("logging")?
            .getattr("LogRecord")?
            .cast_into::<PyType>()?;
        let sample = class.call1(("", 0, "", 0, "", (), py.None()))?;
        let dict = sample.getattr("__dict__")?.cast_into::<PyDict>()?;
        let keys = dict
            .keys()
            .iter()
            .filter_map(|k| k.cast_into::<PyString>().ok())
            .map(|k| {
                let attr = Attr::of(&k.to_cow().unwrap_or_default());
                (k.unbind(), attr)
            })
            .collect();
        Ok(RecordShape {
            class: class.unbind(),
            keys,
        })
    }
}

/// What `RecordView::read` reads: everything for OTLP; for the simple API, not the
/// attributes only OTLP sends (each read costs a reference count and a check).
pub const READ_FOR_OTLP: u16 = u16::MAX;
pub const READ_FOR_LOGWELL: u16 = !Attr::OTLP_ONLY;

/// The attributes of one record; `None` for those missing or None.
#[derive(Default)]
pub struct RecordView<'py> {
    pub name: Option<Bound<'py, PyAny>>,
    pub msg: Option<Bound<'py, PyAny>>,
    pub args: Option<Bound<'py, PyAny>>,
    pub levelno: Option<Bound<'py, PyAny>>,
    pub pathname: Option<Bound<'py, PyAny>>,
    pub exc_info: Option<Bound<'py, PyAny>>,
    pub exc_text: Option<Bound<'py, PyAny>>,
    pub stack_info: Option<Bound<'py, PyAny>>,
    pub lineno: Option<Bound<'py, PyAny>>,
    pub created: Option<Bound<'py, PyAny>>,
    pub levelname: Option<Bound<'py, PyAny>>,
    pub func_name: Option<Bound<'py, PyAny>>,
    pub thread: Option<Bound<'py, PyAny>>,
    pub thread_name: Option<Bound<'py, PyAny>>,
    /// Everything not in `reserved`, in the order it was set.
    pub extras: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
}

impl<'py> RecordView<'py> {
    /// Reads `record` from its `__dict__`, then any attribute the dict did not hold
    /// (a class attribute, a property, an object that only looks like a record) through
    /// `getattr`, as the logging module itself would see it.
    /// `wanted`: `READ_FOR_OTLP` or `READ_FOR_LOGWELL`.
    pub fn read(
        record: &Bound<'py, PyAny>,
        shape: &RecordShape,
        reserved: &Bound<'py, PyFrozenSet>,
        wanted: u16,
    ) -> RecordView<'py> {
        let py = record.py();
        let mut view = RecordView::default();
        // Attributes not wanted count as read already.
        let mut seen = !wanted;
        let dict = record
            .getattr(intern!(py, "__dict__"))
            .ok()
            .and_then(|d| d.cast_into::<PyDict>().ok());
        for (i, (key, value)) in dict.iter().flat_map(PyDictMethods::iter).enumerate() {
            let attr = match shape.keys.get(i) {
                Some((expected, attr)) if key.is(expected) => *attr,
                // A key of another type could run Python code when hashed, and change
                // the dict under this loop; no standard attribute has one.
                _ if !key.is_exact_instance_of::<PyString>() => {
                    view.extras.push((key, value));
                    continue;
                }
                _ => match reserved.contains(&key) {
                    Ok(false) => {
                        view.extras.push((key, value));
                        continue;
                    }
                    _ => key
                        .cast::<PyString>()
                        .map_or(Attr::Unused, |k| Attr::of(&k.to_cow().unwrap_or_default())),
                },
            };
            if seen & attr.bit() == 0 {
                seen |= attr.bit();
                view.set(attr, value);
            }
        }
        for &(name, attr) in &Attr::READ {
            if seen & attr.bit() == 0 {
                if let Ok(value) = record.getattr(name) {
                    view.set(attr, value);
                }
            }
        }
        view
    }

    #[inline]
    fn set(&mut self, attr: Attr, value: Bound<'py, PyAny>) {
        let slot = match attr {
            Attr::Name => &mut self.name,
            Attr::Msg => &mut self.msg,
            Attr::Args => &mut self.args,
            Attr::Levelno => &mut self.levelno,
            Attr::Pathname => &mut self.pathname,
            Attr::ExcInfo => &mut self.exc_info,
            Attr::ExcText => &mut self.exc_text,
            Attr::StackInfo => &mut self.stack_info,
            Attr::Lineno => &mut self.lineno,
            Attr::Created => &mut self.created,
            Attr::Levelname => &mut self.levelname,
            Attr::FuncName => &mut self.func_name,
            Attr::Thread => &mut self.thread,
            Attr::ThreadName => &mut self.thread_name,
            Attr::Unused => return,
        };
        *slot = (!value.is_none()).then_some(value);
    }
}

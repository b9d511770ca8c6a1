//! A log entry as the server takes it, encoded to JSON once, at the call site.
//!
//! `EntryWriter` writes the object field by field into one buffer; the Python edge
//! feeds it values read from a `LogRecord`. Nothing here knows of Python.

use std::cell::Cell;

use crate::json::{push_digits, push_int, JsonWriter, Mark, ValueStyle, ValueWriter};

/// Shown in place of a message that is blank after trimming (the server refuses those).
pub const EMPTY_MESSAGE_PLACEHOLDER: &str = "(empty message)";
/// The metadata field that names the fields left out for `max_metadata_bytes`.
pub const METADATA_TRUNCATED_KEY: &str = "_truncated";
/// Room kept under `max_metadata_bytes` for the `_truncated` note, which counts too.
const NOTE_ROOM: usize = 256;
/// Of that room, what the note's text may take: the rest is its key and, in OTLP, the
/// `{"key":..,"value":{"stringValue":..}}` around it.
const NOTE_TEXT_ROOM: usize = NOTE_ROOM - 64;

/// Size limits on one entry, in bytes of UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Any one string (the message, a metadata value or key) is cut at this length.
    pub max_string_bytes: usize,
    /// Metadata fields that would take the encoded metadata object past this are left out.
    pub max_metadata_bytes: usize,
}

#[cfg(test)]
impl Limits {
    pub const NONE: Limits = Limits {
        max_string_bytes: usize::MAX,
        max_metadata_bytes: usize::MAX,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// The band a Python level number falls in: DEBUG and below are debug, up to INFO
    /// info, up to WARNING warn, up to ERROR error, above that fatal.
    pub fn from_levelno(levelno: i64) -> Level {
        match levelno {
            i64::MIN..=10 => Level::Debug,
            11..=20 => Level::Info,
            21..=30 => Level::Warn,
            31..=40 => Level::Error,
            _ => Level::Fatal,
        }
    }

    pub fn parse(name: &str) -> Option<Level> {
        match name {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            "fatal" => Some(Level::Fatal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

/// Writes `seconds` since the Unix epoch as ISO 8601 UTC with microseconds,
/// e.g. `2026-11-20T22:37:46.123456Z`.
pub fn write_timestamp(out: &mut Vec<u8>, seconds: f64) {
    let seconds = if seconds.is_finite() { seconds } else { 0.0 };
    let total_micros = (seconds * 1_000_000.0).round() as i64;
    let micros = total_micros.rem_euclid(1_000_000);
    let secs = total_micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // By hand rather than through `write!`: this runs once per record, and the
    // formatting machinery cost more than the rest of the timestamp.
    if (0..=9999).contains(&y) {
        push_digits(out, y as u64, 4);
    } else {
        push_int(out, y);
    }
    out.push(b'-');
    push_digits(out, u64::from(m), 2);
    out.push(b'-');
    push_digits(out, u64::from(d), 2);
    out.push(b'T');
    push_digits(out, (sod / 3600) as u64, 2);
    out.push(b':');
    push_digits(out, (sod / 60 % 60) as u64, 2);
    out.push(b':');
    push_digits(out, (sod % 60) as u64, 2);
    out.push(b'.');
    push_digits(out, micros as u64, 6);
    out.push(b'Z');
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// When an entry happened.
#[derive(Clone, Copy, Debug)]
pub enum Timestamp<'a> {
    /// Seconds since the Unix epoch, written as ISO 8601 UTC.
    Seconds(f64),
    /// A caller's own timestamp text, passed through (the server parses it).
    Text(&'a str),
}

/// Each thread's buffers for building entries, reused from one entry to the next: an
/// entry then costs one allocation, of its exact size.
struct Scratch {
    out: Cell<Vec<u8>>,
    keys: Cell<Vec<(usize, usize)>>,
}

/// Buffers grown past this by one huge entry are not kept.
const MAX_SCRATCH_BYTES: usize = 256 * 1024;

impl Scratch {
    fn take(&self) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut out = self.out.take();
        out.clear();
        let mut keys = self.keys.take();
        keys.clear();
        (out, keys)
    }

    fn put_back(&self, out: Vec<u8>, keys: Vec<(usize, usize)>) {
        if out.capacity() <= MAX_SCRATCH_BYTES {
            self.out.set(out);
        }
        self.keys.set(keys);
    }
}

thread_local! {
    static SCRATCH: Scratch = const {
        Scratch {
            out: Cell::new(Vec::new()),
            keys: Cell::new(Vec::new()),
        }
    };
}

/// The span a record was logged in, from OpenTelemetry's current context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// The trace id as 32 lowercase hex digits, as W3C and OTLP's JSON write it.
    pub fn trace_id_hex(&self) -> Hex<32> {
        Hex::of(self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> Hex<16> {
        Hex::of(u128::from(self.span_id))
    }
}

/// The last `N` hex digits of a number, on the stack: ids are written once per record,
/// and a `format!` would allocate each time.
pub struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    fn of(mut value: u128) -> Hex<N> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [b'0'; N];
        for slot in digits.iter_mut().rev() {
            *slot = DIGITS[(value & 0xf) as usize];
            value >>= 4;
        }
        Hex(digits)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// What an OTLP log record holds besides its attributes. `service` and `scope` are not
/// part of the record: they pick the `resourceLogs` and `scopeLogs` it is sent under.
#[derive(Clone, Copy, Debug)]
pub struct OtlpHead<'a> {
    pub service: &'a str,
    pub scope: &'a str,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: u8,
    pub severity_text: &'a str,
    pub body: &'a str,
    pub trace: Option<TraceContext>,
}

/// The message as sent: a blank one is replaced, as the server refuses those.
fn shown(message: &str) -> &str {
    if message.trim().is_empty() {
        EMPTY_MESSAGE_PLACEHOLDER
    } else {
        message
    }
}

/// Builds one entry: a Logwell entry object (`{"level", ..., "metadata": {...}}`), or an
/// OTLP log record (`{"timeUnixNano", ..., "attributes": [...]}`) preceded by its service
/// and scope as two JSON strings, which `otlp::batch_body` takes apart again.
/// Call order: a constructor, `service`/`source`, then `field`s, then `finish`.
pub struct EntryWriter {
    json: JsonWriter,
    style: ValueStyle,
    max_metadata_bytes: usize,
    /// Where the metadata object (or attributes array) starts, once it does.
    fields_start: Option<usize>,
    /// Where each field key written so far sits in the output, as its encoded
    /// `"key"`: ranges rather than owned copies, one allocation fewer per key.
    field_keys: Vec<(usize, usize)>,
    /// The field written last, not yet checked against `max_metadata_bytes`: where it
    /// starts, and where its value starts.
    open_field: Option<(Mark, usize)>,
    /// Fields left out because the metadata would have been too large: their names, and
    /// their encoded keys (their ranges in the output are gone).
    left_out: Vec<(String, Vec<u8>)>,
}

impl EntryWriter {
    fn start(style: ValueStyle, limits: Limits) -> EntryWriter {
        let (out, field_keys) = SCRATCH.with(|s| s.take());
        let mut json = JsonWriter::from_vec(out);
        json.set_max_string_bytes(limits.max_string_bytes);
        EntryWriter {
            json,
            style,
            max_metadata_bytes: limits.max_metadata_bytes,
            fields_start: None,
            field_keys,
            open_field: None,
            left_out: Vec::new(),
        }
    }

    /// A Logwell entry, for `/v1/ingest`.
    pub fn new(
        level: Level,
        message: &str,
        timestamp: Timestamp<'_>,
        limits: Limits,
    ) -> EntryWriter {
        let mut entry = EntryWriter::start(ValueStyle::Plain, limits);
        let json = &mut entry.json;
        json.begin_object();
        json.key("level");
        json.string(level.as_str());
        json.key("message");
        json.string(shown(message));
        json.key("timestamp");
        match timestamp {
            Timestamp::Seconds(created) => {
                json.separate();
                json.out.push(b'"');
                write_timestamp(&mut json.out, created);
                json.out.push(b'"');
            }
            Timestamp::Text(text) => json.string(text),
        }
        entry
    }

    /// An OTLP log record, for `/v1/logs`, in protobuf's JSON mapping.
    pub fn otlp(head: &OtlpHead<'_>, limits: Limits) -> EntryWriter {
        let mut entry = EntryWriter::start(ValueStyle::AnyValue, limits);
        let json = &mut entry.json;
        json.string(head.service);
        json.string(head.scope);
        json.begin_object();
        json.key("timeUnixNano");
        push_quoted_u64(json, head.time_unix_nano);
        json.key("observedTimeUnixNano");
        push_quoted_u64(json, head.observed_time_unix_nano);
        json.key("severityNumber");
        json.int(i64::from(head.severity_number));
        json.key("severityText");
        json.string(head.severity_text);
        json.key("body");
        json.begin_object();
        json.key("stringValue");
        json.string(shown(head.body));
        json.end_object();
        if let Some(trace) = head.trace {
            json.key("traceId");
            json.string(trace.trace_id_hex().as_str());
            json.key("spanId");
            json.string(trace.span_id_hex().as_str());
            json.key("flags");
            json.int(i64::from(trace.flags));
        }
        entry
    }

    /// Logwell entries only: in OTLP the service is the resource's `service.name`.
    pub fn service(&mut self, service: &str) {
        if self.style == ValueStyle::Plain {
            self.json.key("service");
            self.json.string(service);
        }
    }

    /// The file and line of the call. Logwell takes `lineNumber` only as an integer > 0;
    /// other lines are left out. In OTLP they are attributes, under the names Logwell
    /// reads (`code.filepath`, `code.lineno`) and the current semantic conventions'.
    pub fn source(&mut self, file: &str, line: i64) {
        if self.style == ValueStyle::AnyValue {
            if !file.is_empty() {
                for key in ["code.filepath", "code.file.path"] {
                    if let Some(mut w) = self.field(key) {
                        w.string(file);
                    }
                }
            }
            if line > 0 {
                for key in ["code.lineno", "code.line.number"] {
                    if let Some(mut w) = self.field(key) {
                        w.int(line);
                    }
                }
            }
            return;
        }
        if !file.is_empty() {
            self.json.key("sourceFile");
            self.json.string(file);
        }
        if line > 0 {
            self.json.key("lineNumber");
            self.json.int(line);
        }
    }

    /// Starts the next metadata field (an attribute, in OTLP) and returns the writer for
    /// its value, or `None` when a field of that name was already written: the first
    /// writer of a key wins, so callers write in order of precedence, highest first.
    pub fn field(&mut self, key: &str) -> Option<ValueWriter<'_>> {
        self.close_field();
        let otlp = self.style == ValueStyle::AnyValue;
        if self.fields_start.is_none() {
            self.json.key(if otlp { "attributes" } else { "metadata" });
            self.fields_start = Some(self.json.len());
            if otlp {
                self.json.begin_array();
            } else {
                self.json.begin_object();
            }
        }
        // The key is written, then compared with those before it in encoded form (the
        // encoding is one-to-one), and taken back if it is one of them.
        let mark = self.json.mark();
        self.json.separate();
        if otlp {
            self.json.out.extend_from_slice(br#"{"key":"#);
        }
        let start = self.json.len();
        self.json.string_unseparated(key);
        let end = self.json.len();
        if self.is_written(start, end) {
            self.json.reset(mark);
            return None;
        }
        if otlp {
            self.json.out.extend_from_slice(br#","value":"#);
        } else {
            self.json.out.push(b':');
        }
        self.json.after_key = true;
        self.open_field = Some((mark, self.json.len()));
        self.field_keys.push((start, end));
        Some(ValueWriter::new(&mut self.json, self.style))
    }

    /// Whether the encoded key at `start..end` of the output was written before it.
    fn is_written(&self, start: usize, end: usize) -> bool {
        let key = &self.json.out[start..end];
        self.field_keys
            .iter()
            .any(|&(s, e)| &self.json.out[s..e] == key)
            || self.left_out.iter().any(|(_, encoded)| encoded == key)
    }

    /// Ends the last field and returns where it started, or takes it back if no value
    /// was written for it (the entry stays valid JSON whatever the caller did).
    fn end_field(&mut self) -> Option<Mark> {
        let (mark, value_start) = self.open_field.take()?;
        if self.json.len() == value_start {
            self.field_keys.pop();
            self.json.reset(mark);
            return None;
        }
        if self.style == ValueStyle::AnyValue {
            self.json.out.push(b'}'); // the {"key", "value"} pair
        }
        Some(mark)
    }

    /// Ends the last field, and takes it back if it made the metadata too large.
    fn close_field(&mut self) {
        let (Some(mark), Some(start)) = (self.end_field(), self.fields_start) else {
            return;
        };
        if self.json.len() - start > self.max_metadata_bytes.saturating_sub(NOTE_ROOM) {
            if let Some((s, e)) = self.field_keys.pop() {
                let encoded = self.json.out[s..e].to_vec();
                let name = serde_json::from_slice(&encoded).unwrap_or_default();
                self.left_out.push((name, encoded));
            }
            self.json.reset(mark);
        }
    }

    /// Which fields were left out: as many names as fit in `NOTE_TEXT_ROOM`, then a count.
    fn truncation_note(&self) -> String {
        let mut note = format!(
            "left out to keep metadata under {} bytes: ",
            self.max_metadata_bytes
        );
        // Bytes as written: a name takes what its encoded key took, less the quotes.
        let mut size = note.len();
        let mut named = 0;
        let rest_room = " and 18446744073709551615 more".len();
        for (name, encoded) in &self.left_out {
            let cost = encoded.len() - 2 + if named > 0 { 2 } else { 0 };
            if size + cost + rest_room > NOTE_TEXT_ROOM {
                break;
            }
            if named > 0 {
                note.push_str(", ");
            }
            note.push_str(name);
            size += cost;
            named += 1;
        }
        let rest = self.left_out.len() - named;
        match (named, rest) {
            (_, 0) => {}
            (0, _) => note.push_str(&format!("{rest} fields")),
            _ => note.push_str(&format!(" and {rest} more")),
        }
        note
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.close_field();
        if !self.left_out.is_empty() {
            let note = self.truncation_note();
            // Unless a field of that name was written already (a record's own). The
            // note is ended, not closed: it is not checked for size.
            if let Some(mut w) = self.field(METADATA_TRUNCATED_KEY) {
                w.string(&note);
            }
            self.end_field();
        }
        if self.fields_start.is_some() {
            if self.style == ValueStyle::AnyValue {
                self.json.end_array();
            } else {
                self.json.end_object();
            }
        }
        self.json.end_object();
        // An exact copy: the entry may wait in the queue a while, and a right-sized
        // allocation holds no slack.
        let out = self.json.into_bytes();
        let entry = out.clone();
        SCRATCH.with(|s| s.put_back(out, self.field_keys));
        entry
    }
}

/// `n` as a quoted decimal string: protobuf's JSON mapping of a 64-bit integer.
fn push_quoted_u64(json: &mut JsonWriter, n: u64) {
    json.separate();
    json.out.push(b'"');
    push_digits(&mut json.out, n, decimal_digits(n));
    json.out.push(b'"');
}

fn decimal_digits(mut n: u64) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// The request body for a batch: a JSON array of already-encoded entries.
pub fn batch_body<'a>(entries: impl Iterator<Item = &'a [u8]>, size_hint: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size_hint + 2);
    body.push(b'[');
    for (i, e) in entries.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.push(b']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    #[test]
    fn level_bands() {
        let cases = [
            (0, Level::Debug),
            (5, Level::Debug),
            (10, Level::Debug),
            (15, Level::Info),
            (20, Level::Info),
            (25, Level::Warn),
            (30, Level::Warn),
            (35, Level::Error),
            (40, Level::Error),
            (45, Level::Fatal),
            (50, Level::Fatal),
        ];
        for (n, level) in cases {
            assert_eq!(Level::from_levelno(n), level, "levelno {n}");
        }
    }

    #[test]
    fn timestamps_are_iso8601_utc_with_micros() {
        let mut out = Vec::new();
        write_timestamp(&mut out, 0.0);
        assert_eq!(out, b"1970-01-01T00:00:00.000000Z");
        out.clear();
        write_timestamp(&mut out, 1_709_251_199.999_999_7);
        assert_eq!(out, b"2024-03-01T00:00:00.000000Z");
        out.clear();
        write_timestamp(&mut out, 951_782_400.25); // 2000-02-29, a leap day
        assert_eq!(out, b"2000-02-29T00:00:00.250000Z");
    }

    #[test]
    fn entry_with_every_field() {
        let mut w = EntryWriter::new(
            Level::Warn,
            "disk \"low\"\n",
            Timestamp::Seconds(0.5),
            Limits::NONE,
        );
        w.service("shop");
        w.source("app/views.py", 42);
        w.field("request_id").expect("first").string("r-1");
        assert!(w.field("request_id").is_none(), "first writer wins");
        let mut n = w.field("nested").expect("new key");
        n.begin_map();
        n.map_key("xs");
        n.begin_list();
        n.int(1);
        n.float(f64::NAN);
        n.null();
        n.end_list();
        n.end_map();
        let v = parse(&w.finish());
        assert_eq!(
            v,
            json!({
                "level": "warn", "message": "disk \"low\"\n",
                "timestamp": "1970-01-01T00:00:00.500000Z",
                "service": "shop", "sourceFile": "app/views.py", "lineNumber": 42,
                "metadata": {"request_id": "r-1", "nested": {"xs": [1, "nan", null]}}
            })
        );
    }

    #[test]
    fn blank_message_gets_placeholder_and_bad_line_is_left_out() {
        let mut w = EntryWriter::new(Level::Info, " \t\n", Timestamp::Seconds(0.0), Limits::NONE);
        w.source("", 0);
        let v = parse(&w.finish());
        assert_eq!(v["message"], EMPTY_MESSAGE_PLACEHOLDER);
        assert!(v.get("lineNumber").is_none());
        assert!(v.get("metadata").is_none(), "no empty metadata object");
    }

    #[test]
    fn timestamp_text_is_passed_through() {
        let w = EntryWriter::new(
            Level::Info,
            "m",
            Timestamp::Text("2026-01-01T00:00:00Z"),
            Limits::NONE,
        );
        assert_eq!(parse(&w.finish())["timestamp"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn batch_body_is_an_array() {
        let a = br#"{"a":1}"#.as_slice();
        let b = br#"{"b":2}"#.as_slice();
        assert_eq!(batch_body([a, b].into_iter(), 16), br#"[{"a":1},{"b":2}]"#);
    }

    #[test]
    fn the_first_of_two_equal_metadata_keys_wins_even_when_escaped() {
        let mut e = EntryWriter::new(Level::Info, "m", Timestamp::Seconds(0.0), Limits::NONE);
        for (key, value) in [("a\"b", 1), ("a\"b", 2), ("n", 3), ("n", 4)] {
            if let Some(mut w) = e.field(key) {
                w.int(value);
            }
        }
        let v = parse(&e.finish());
        assert_eq!(v["metadata"], serde_json::json!({"a\"b": 1, "n": 3}));
    }

    fn otlp_head() -> OtlpHead<'static> {
        OtlpHead {
            service: "s",
            scope: "x",
            time_unix_nano: 1,
            observed_time_unix_nano: 1,
            severity_number: 9,
            severity_text: "INFO",
            body: "m",
            trace: None,
        }
    }

    #[test]
    fn a_field_left_without_a_value_is_taken_back() {
        for otlp in [false, true] {
            let mut w = if otlp {
                EntryWriter::otlp(&otlp_head(), Limits::NONE)
            } else {
                EntryWriter::new(Level::Info, "m", Timestamp::Seconds(0.0), Limits::NONE)
            };
            let _ = w.field("no value");
            w.field("kept").expect("new").int(1);
            let _ = w.field("no value either");
            let entry = w.finish();
            let (_, _, record) = crate::otlp::split_entry(&entry);
            let v = parse(if otlp { record } else { &entry });
            let fields = if otlp {
                &v["attributes"]
            } else {
                &v["metadata"]
            };
            assert_eq!(fields.to_string().matches("kept").count(), 1, "{v}");
            assert!(!fields.to_string().contains("no value"), "{v}");
        }
    }

    #[test]
    fn long_strings_are_cut_at_a_char_boundary_with_a_marker() {
        let limits = Limits {
            max_string_bytes: 11,
            max_metadata_bytes: usize::MAX,
        };
        // 'é' is two bytes: byte 11 falls inside the fifth one, which is left out whole.
        let message = "ab".to_owned() + &"é".repeat(20);
        let v = parse(
            &EntryWriter::new(Level::Info, &message, Timestamp::Seconds(0.0), limits).finish(),
        );
        let text = v["message"].as_str().expect("string");
        assert!(
            text.starts_with("abéééé…[truncated: 42 bytes in all]"),
            "{text}"
        );
    }

    #[test]
    fn metadata_over_its_limit_leaves_out_whole_fields_and_says_which() {
        let limits = Limits {
            max_string_bytes: usize::MAX,
            max_metadata_bytes: 1024,
        };
        let mut w = EntryWriter::new(Level::Info, "m", Timestamp::Seconds(0.0), limits);
        w.field("big").expect("new").string(&"x".repeat(1000));
        w.field("small").expect("new").int(1);
        let mut nested = w.field("nested").expect("new");
        nested.begin_map();
        nested.map_key("k");
        nested.string(&"y".repeat(1000));
        nested.end_map();
        let v = parse(&w.finish());
        assert_eq!(v["metadata"]["small"], 1);
        assert!(v["metadata"].get("big").is_none());
        assert!(v["metadata"].get("nested").is_none());
        let note = v["metadata"][METADATA_TRUNCATED_KEY]
            .as_str()
            .expect("note");
        assert!(note.contains("big, nested"), "{note}");
    }

    #[test]
    fn the_truncation_note_counts_towards_the_metadata_limit() {
        let limits = Limits {
            max_string_bytes: usize::MAX,
            max_metadata_bytes: 2048,
        };
        for otlp in [false, true] {
            let mut w = if otlp {
                EntryWriter::otlp(&otlp_head(), limits)
            } else {
                EntryWriter::new(Level::Info, "m", Timestamp::Seconds(0.0), limits)
            };
            for i in 0..10_000 {
                w.field(&format!("extra_field_{i}")).expect("new").int(i);
            }
            let entry = w.finish();
            let (_, _, record) = crate::otlp::split_entry(&entry);
            let v = parse(if otlp { record } else { &entry });
            let fields = if otlp {
                &v["attributes"]
            } else {
                &v["metadata"]
            };
            let size = serde_json::to_vec(fields).expect("json").len();
            assert!(size <= 2048, "{size} bytes of metadata (otlp: {otlp})");
            let text = serde_json::to_string(fields).expect("json");
            assert!(text.contains("_truncated"), "{text}");
            assert!(text.contains(" more"), "{text}");
        }
    }
}

//! A log entry encoded to JSON once, at the call site, field by field into one buffer,
//! within its size limits. The layout is the protocol's (`protocol::logwell`,
//! `protocol::otlp`); the Python edge feeds values read from a `LogRecord`. Nothing
//! here knows of Python.

use std::cell::Cell;
use std::fmt::Write;

use crate::json::{JsonWriter, Mark, ValueWriter};
use crate::key_set::KeySet;
use crate::protocol::logwell::{self, Level, Timestamp};
use crate::protocol::otlp::{self, OtlpHead};
use crate::protocol::Protocol;

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

/// Each thread's buffers for building entries, reused from one entry to the next: an
/// entry then costs one allocation, of its exact size.
struct Scratch {
    out: Cell<Vec<u8>>,
    keys: Cell<KeySet>,
}

/// Entries this large are handed over in the scratch buffer itself rather than copied.
const HAND_OVER_BYTES: usize = 16 * 1024;

/// Buffers grown past this by one huge entry are not kept.
const MAX_SCRATCH_BYTES: usize = 256 * 1024;

impl Scratch {
    fn take(&self) -> (Vec<u8>, KeySet) {
        let mut out = self.out.take();
        out.clear();
        let mut keys = self.keys.take();
        keys.clear();
        (out, keys)
    }

    fn put_back(&self, out: Vec<u8>, keys: KeySet) {
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
            keys: Cell::new(KeySet::new()),
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

/// Builds one entry: a Logwell entry object (`{"level", ..., "metadata": {...}}`), or an
/// OTLP log record (`{"timeUnixNano", ..., "attributes": [...]}`) preceded by its service
/// and scope as two JSON strings, which `otlp::batch_body` takes apart again.
/// Call order: a constructor, `service`/`source`, then `field`s, then `finish`.
pub struct EntryWriter {
    json: JsonWriter,
    protocol: Protocol,
    max_metadata_bytes: usize,
    /// Where the metadata object (or attributes array) starts, once it does.
    fields_start: Option<usize>,
    /// Each field key written so far, as its encoded `"key"` in the output: ranges
    /// rather than owned copies, one allocation fewer per key.
    field_keys: KeySet,
    /// The field written last, not yet checked against `max_metadata_bytes`: where it
    /// starts, and where its value starts.
    open_field: Option<(Mark, usize)>,
    /// Fields left out because the metadata would have been too large: their names, and
    /// their encoded keys (their ranges in the output are gone).
    left_out: Vec<(String, Vec<u8>)>,
}

impl EntryWriter {
    fn start(protocol: Protocol, limits: Limits) -> EntryWriter {
        let (out, field_keys) = SCRATCH.with(Scratch::take);
        let mut json = JsonWriter::from_vec(out);
        json.set_max_string_bytes(limits.max_string_bytes);
        EntryWriter {
            json,
            protocol,
            max_metadata_bytes: limits.max_metadata_bytes,
            fields_start: None,
            field_keys,
            open_field: None,
            left_out: Vec::new(),
        }
    }

    /// A Logwell entry, for `/v1/ingest`.
    pub fn logwell(
        level: Level,
        message: &str,
        timestamp: Timestamp<'_>,
        limits: Limits,
    ) -> EntryWriter {
        let mut entry = EntryWriter::start(Protocol::Logwell, limits);
        logwell::write_head(&mut entry.json, level, message, timestamp);
        entry
    }

    /// An OTLP log record, for `/v1/logs`.
    pub fn otlp(head: &OtlpHead<'_>, limits: Limits) -> EntryWriter {
        let mut entry = EntryWriter::start(Protocol::Otlp, limits);
        otlp::write_head(&mut entry.json, head);
        entry
    }

    /// Logwell entries only: in OTLP the service is the resource's `service.name`.
    pub fn service(&mut self, service: &str) {
        if self.protocol == Protocol::Logwell {
            logwell::write_service(&mut self.json, service);
        }
    }

    /// The file and line of the call: fields of a Logwell entry, attributes in OTLP.
    pub fn source(&mut self, file: &str, line: i64) {
        if self.protocol == Protocol::Logwell {
            logwell::write_source(&mut self.json, file, line);
            return;
        }
        if !file.is_empty() {
            for key in otlp::attribute::FILE_PATH {
                if let Some(mut w) = self.field(key) {
                    w.string(file);
                }
            }
        }
        if line > 0 {
            for key in otlp::attribute::LINE_NUMBER {
                if let Some(mut w) = self.field(key) {
                    w.int(line);
                }
            }
        }
    }

    /// Starts the next metadata field (an attribute, in OTLP) and returns the writer for
    /// its value, or `None` when a field of that name was already written: the first
    /// writer of a key wins, so callers write in order of precedence, highest first.
    pub fn field(&mut self, key: &str) -> Option<ValueWriter<'_>> {
        self.close_field();
        let otlp = self.protocol == Protocol::Otlp;
        if self.fields_start.is_none() {
            self.json.key(if otlp {
                otlp::ATTRIBUTES
            } else {
                logwell::METADATA
            });
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
            self.json.out.extend_from_slice(otlp::ATTRIBUTE_START);
        }
        let start = self.json.len();
        self.json.string_unseparated(key);
        let end = self.json.len();
        if self.is_left_out(start, end) || !self.field_keys.insert(&self.json.out, start, end) {
            self.json.reset(mark);
            return None;
        }
        if otlp {
            self.json.out.extend_from_slice(otlp::ATTRIBUTE_VALUE);
        } else {
            self.json.out.push(b':');
        }
        self.json.after_key = true;
        self.open_field = Some((mark, self.json.len()));
        Some(ValueWriter::new(
            &mut self.json,
            self.protocol.value_style(),
        ))
    }

    /// Whether the encoded key at `start..end` of the output is one left out before.
    fn is_left_out(&self, start: usize, end: usize) -> bool {
        let key = &self.json.out[start..end];
        self.left_out.iter().any(|(_, encoded)| encoded == key)
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
        if self.protocol == Protocol::Otlp {
            self.json.out.push(otlp::ATTRIBUTE_END);
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
            (0, _) => {
                let _ = write!(note, "{rest} fields");
            }
            _ => {
                let _ = write!(note, " and {rest} more");
            }
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
            if self.protocol == Protocol::Otlp {
                self.json.end_array();
            } else {
                self.json.end_object();
            }
        }
        self.json.end_object();
        // The entry may wait in the queue a while: it must hold no slack. A small one is
        // copied, and the buffer kept for the next; a large one is handed over, shrunk in
        // place, as copying 64 KiB costs more than the rest of the record.
        let mut out = self.json.into_bytes();
        let entry = if out.len() < HAND_OVER_BYTES {
            out.clone()
        } else {
            out.shrink_to_fit();
            std::mem::take(&mut out)
        };
        SCRATCH.with(|s| s.put_back(out, self.field_keys));
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    #[test]
    fn entry_with_every_field() {
        let mut w = EntryWriter::logwell(
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
        let mut w =
            EntryWriter::logwell(Level::Info, " \t\n", Timestamp::Seconds(0.0), Limits::NONE);
        w.source("", 0);
        let v = parse(&w.finish());
        assert_eq!(v["message"], crate::protocol::EMPTY_MESSAGE_PLACEHOLDER);
        assert!(v.get("lineNumber").is_none());
        assert!(v.get("metadata").is_none(), "no empty metadata object");
    }

    #[test]
    fn timestamp_text_is_passed_through() {
        let w = EntryWriter::logwell(
            Level::Info,
            "m",
            Timestamp::Text("2026-01-01T00:00:00Z"),
            Limits::NONE,
        );
        assert_eq!(parse(&w.finish())["timestamp"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn the_first_of_two_equal_metadata_keys_wins_even_when_escaped() {
        let mut e = EntryWriter::logwell(Level::Info, "m", Timestamp::Seconds(0.0), Limits::NONE);
        for (key, value) in [("a\"b", 1), ("a\"b", 2), ("n", 3), ("n", 4)] {
            if let Some(mut w) = e.field(key) {
                w.int(value);
            }
        }
        let v = parse(&e.finish());
        assert_eq!(v["metadata"], serde_json::json!({"a\"b": 1, "n": 3}));
    }

    #[test]
    fn a_field_left_without_a_value_is_taken_back() {
        for otlp in [false, true] {
            let mut w = if otlp {
                EntryWriter::otlp(&otlp::test_head("m"), Limits::NONE)
            } else {
                EntryWriter::logwell(Level::Info, "m", Timestamp::Seconds(0.0), Limits::NONE)
            };
            let _ = w.field("no value");
            w.field("kept").expect("new").int(1);
            let _ = w.field("no value either");
            let entry = w.finish();
            let (_, _, record) = otlp::split_entry(&entry);
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
            &EntryWriter::logwell(Level::Info, &message, Timestamp::Seconds(0.0), limits).finish(),
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
        let mut w = EntryWriter::logwell(Level::Info, "m", Timestamp::Seconds(0.0), limits);
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
                EntryWriter::otlp(&otlp::test_head("m"), limits)
            } else {
                EntryWriter::logwell(Level::Info, "m", Timestamp::Seconds(0.0), limits)
            };
            for i in 0..10_000 {
                w.field(&format!("extra_field_{i}")).expect("new").int(i);
            }
            let entry = w.finish();
            let (_, _, record) = otlp::split_entry(&entry);
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

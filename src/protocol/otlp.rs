//! OTLP/HTTP JSON (`POST /v1/logs`), in protobuf's JSON mapping: the log record, severity
//! numbers, the export request that wraps a batch, and what a reply says was refused.
//!
//! Each queued OTLP entry is its service and its scope as two JSON strings, then the log
//! record object (`write_head`, then attributes). A batch is grouped here by service
//! (one `resourceLogs` each) and by scope (one `scopeLogs` each), in order of first
//! appearance.

use crate::errors::Error;
use crate::json::{push_digits, push_int, JsonWriter};
use crate::json_string::push_json_string;
use crate::record::TraceContext;

use super::logwell::{self, Level};
use super::{shown_message, Reply};

pub const PATH: &str = "/v1/logs";
/// The largest `batch_size` for OTLP receivers other than Logwell.
pub const MAX_BATCH_SIZE: usize = 10_000;
/// The record's field that holds every other field: an array of `KeyValue`s.
pub const ATTRIBUTES: &str = "attributes";
/// What an attribute's key is written between, then its value, then `ATTRIBUTE_END`.
pub const ATTRIBUTE_START: &[u8] = br#"{"key":"#;
pub const ATTRIBUTE_VALUE: &[u8] = br#","value":"#;
pub const ATTRIBUTE_END: u8 = b'}';

/// Attributes this crate fills from a record: semantic conventions' names.
pub mod attribute {
    /// Both the names Logwell reads and the current conventions'.
    pub const FILE_PATH: [&str; 2] = ["code.filepath", "code.file.path"];
    pub const LINE_NUMBER: [&str; 2] = ["code.lineno", "code.line.number"];
    pub const FUNCTION: &str = "code.function.name";
    pub const THREAD_ID: &str = "thread.id";
    pub const THREAD_NAME: &str = "thread.name";
    pub const STACKTRACE: &str = "code.stacktrace";
    /// `exception.type`, `.message`, `.stacktrace`, in the order of
    /// `logwell::field::EXCEPTION_PARTS`.
    pub const EXCEPTION: [&str; 3] = [
        "exception.type",
        "exception.message",
        "exception.stacktrace",
    ];
    pub const PROCESS_PID: &str = "process.pid";
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

/// Writes an entry's service and scope, then opens its log record and writes all of it
/// but the attributes.
pub fn write_head(json: &mut JsonWriter, head: &OtlpHead<'_>) {
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
    json.string(shown_message(head.body));
    json.end_object();
    if let Some(trace) = head.trace {
        json.key("traceId");
        json.string(trace.trace_id_hex().as_str());
        json.key("spanId");
        json.string(trace.span_id_hex().as_str());
        json.key("flags");
        json.int(i64::from(trace.flags));
    }
}

/// A head with every field set, for tests of the writer and of batches.
#[cfg(test)]
pub fn test_head(body: &str) -> OtlpHead<'_> {
    OtlpHead {
        service: "s",
        scope: "x",
        time_unix_nano: 1,
        observed_time_unix_nano: 1,
        severity_number: 9,
        severity_text: "INFO",
        body,
        trace: None,
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

/// OpenTelemetry's severity number for a Python level number. The standard levels are
/// the first of their band (DEBUG 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21); a level
/// above one of them takes the next numbers of its band, up to the band's fourth, as
/// OpenTelemetry's own logging handler maps them (25 is INFO4). Below DEBUG is TRACE.
pub fn severity_number(levelno: i64) -> u8 {
    let (band_start, band_level) = match levelno {
        i64::MIN..=9 => return (1 + levelno.clamp(0, 3)) as u8,
        10..=19 => (5, 10),
        20..=29 => (9, 20),
        30..=39 => (13, 30),
        40..=49 => (17, 40),
        _ => (21, 50),
    };
    band_start + (levelno - band_level).min(3) as u8
}

/// Severity number and text of a client call's level.
pub fn level_severity(level: Level) -> (u8, &'static str) {
    match level {
        Level::Debug => (5, "DEBUG"),
        Level::Info => (9, "INFO"),
        Level::Warn => (13, "WARN"),
        Level::Error => (17, "ERROR"),
        Level::Fatal => (21, "FATAL"),
    }
}

/// The end of the JSON string that starts `bytes` (just past its closing quote).
fn json_string_end(bytes: &[u8]) -> Option<usize> {
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// An entry's service, scope (both still encoded as JSON strings) and log record.
pub fn split_entry(entry: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let Some(a) = json_string_end(entry) else {
        return (br#""""#, br#""""#, entry);
    };
    let Some(b) = json_string_end(&entry[a..]).map(|b| a + b) else {
        return (br#""""#, br#""""#, entry);
    };
    (&entry[..a], &entry[a..b], &entry[b..])
}

/// A scope (its name, encoded) and its records.
type ScopeRecords<'a> = (&'a [u8], Vec<&'a [u8]>);
/// A service (its name, encoded) and its scopes.
type ServiceScopes<'a> = (&'a [u8], Vec<ScopeRecords<'a>>);

/// An `ExportLogsServiceRequest` holding `entries`. `resource_attributes`: the
/// encoded `KeyValue`s every resource carries besides `service.name`, comma-separated.
pub fn batch_body<'a>(
    entries: impl Iterator<Item = &'a [u8]>,
    size_hint: usize,
    resource_attributes: &[u8],
) -> Vec<u8> {
    // service -> scope -> records, each level in order of first appearance. A batch
    // holds a few services and scopes at most, so linear search is the fast way.
    let mut services: Vec<ServiceScopes<'a>> = Vec::new();
    for entry in entries {
        let (service, scope, record) = split_entry(entry);
        let scopes = if let Some(i) = services.iter().position(|(s, _)| *s == service) {
            &mut services[i].1
        } else {
            services.push((service, Vec::new()));
            &mut services.last_mut().expect("just pushed").1
        };
        match scopes.iter().position(|(s, _)| *s == scope) {
            Some(i) => scopes[i].1.push(record),
            None => scopes.push((scope, vec![record])),
        }
    }
    let mut body = Vec::with_capacity(size_hint + 256 * services.len() + 64);
    body.extend_from_slice(br#"{"resourceLogs":["#);
    for (i, (service, scopes)) in services.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(
            br#"{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"#,
        );
        body.extend_from_slice(service);
        body.extend_from_slice(b"}}");
        if !resource_attributes.is_empty() {
            body.push(b',');
            body.extend_from_slice(resource_attributes);
        }
        body.extend_from_slice(br#"]},"scopeLogs":["#);
        for (j, (scope, records)) in scopes.iter().enumerate() {
            if j > 0 {
                body.push(b',');
            }
            body.extend_from_slice(br#"{"scope":{"name":"#);
            body.extend_from_slice(scope);
            body.extend_from_slice(br#"},"logRecords":["#);
            for (k, record) in records.iter().enumerate() {
                if k > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(record);
            }
            body.extend_from_slice(b"]}");
        }
        body.extend_from_slice(b"]}");
    }
    body.extend_from_slice(b"]}");
    body
}

/// A `KeyValue` of `key` and an already-encoded `AnyValue`.
pub fn key_value(key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 24);
    out.extend_from_slice(br#"{"key":"#);
    push_json_string(&mut out, key);
    out.extend_from_slice(br#","value":"#);
    out.extend_from_slice(value);
    out.push(b'}');
    out
}

/// A `KeyValue` holding an integer.
pub fn int_attribute(key: &str, value: i64) -> Vec<u8> {
    let mut encoded = br#"{"intValue":""#.to_vec();
    push_int(&mut encoded, value);
    encoded.extend_from_slice(br#""}"#);
    key_value(key, &encoded)
}

/// An OTLP export reply: empty or `{}` when all went in, `partialSuccess` naming how
/// many were refused. Logwell's `/v1/logs` answers as its `/v1/ingest` does.
pub fn read_reply(body: &[u8], entries: u64) -> Result<Reply, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Reply {
            accepted: entries,
            rejected: 0,
            said_rejected: None,
            errors: Vec::new(),
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::BadReply(e.to_string()))?;
    if value.get("accepted").is_some() {
        return logwell::read_reply(body, entries);
    }
    let partial = partial_success(&value);
    let said_rejected = partial.as_ref().map(|(rejected, _)| *rejected);
    let (rejected, message) = partial.unwrap_or((0, None));
    let rejected = rejected.min(entries);
    Ok(Reply {
        accepted: entries - rejected,
        rejected,
        said_rejected,
        errors: message.into_iter().collect(),
    })
}

/// What a 2xx OTLP reply says was refused: `partialSuccess.rejectedLogRecords` (a
/// 64-bit integer, so a string or a number) and its `errorMessage`.
fn partial_success(reply: &serde_json::Value) -> Option<(u64, Option<String>)> {
    let partial = reply.get("partialSuccess")?;
    let rejected = match partial.get("rejectedLogRecords") {
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(v) => v.as_u64().unwrap_or(0),
        None => 0,
    };
    let message = partial
        .get("errorMessage")
        .and_then(serde_json::Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    Some((rejected, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EntryWriter, Limits};
    use serde_json::{json, Value};

    #[test]
    fn standard_levels_start_their_band_and_custom_ones_stay_in_it() {
        let cases = [
            (0, 1),
            (5, 4),
            (10, 5),
            (11, 6),
            (15, 8),
            (20, 9),
            (25, 12),
            (30, 13),
            (40, 17),
            (50, 21),
            (52, 23),
            (99, 24),
            (-5, 1),
        ];
        for (levelno, number) in cases {
            assert_eq!(severity_number(levelno), number, "levelno {levelno}");
        }
    }

    fn entry(service: &str, scope: &str, body: &str) -> Vec<u8> {
        let head = OtlpHead {
            service,
            scope,
            time_unix_nano: 1_700_000_000_123_456_000,
            observed_time_unix_nano: 1_700_000_000_223_456_000,
            severity_number: 9,
            severity_text: "INFO",
            body,
            trace: Some(TraceContext {
                trace_id: 0xabc,
                span_id: 0x12,
                flags: 1,
            }),
        };
        let mut w = EntryWriter::otlp(&head, Limits::NONE);
        w.source("app.py", 7);
        w.field("user").expect("new").string("u-1");
        w.finish()
    }

    #[test]
    fn records_are_grouped_by_service_then_scope_in_order() {
        let entries = [
            entry("shop", "app.db", "one"),
            entry("shop", "app.web", "two"),
            entry("mail\"x", "app.db", "three"),
            entry("shop", "app.db", "four"),
        ];
        let pid = int_attribute(attribute::PROCESS_PID, 42);
        let body = batch_body(entries.iter().map(|e| &e[..]), 0, &pid);
        let v: Value = serde_json::from_slice(&body).expect("valid JSON");
        let resources = v["resourceLogs"].as_array().expect("array");
        assert_eq!(resources.len(), 2);
        assert_eq!(
            resources[0]["resource"]["attributes"],
            json!([{"key": "service.name", "value": {"stringValue": "shop"}},
                   {"key": "process.pid", "value": {"intValue": "42"}}])
        );
        let scopes = resources[0]["scopeLogs"].as_array().expect("array");
        assert_eq!(scopes[0]["scope"]["name"], "app.db");
        let bodies: Vec<&Value> = scopes[0]["logRecords"]
            .as_array()
            .expect("array")
            .iter()
            .map(|r| &r["body"]["stringValue"])
            .collect();
        assert_eq!(bodies, [&json!("one"), &json!("four")]);
        assert_eq!(scopes[1]["scope"]["name"], "app.web");
        assert_eq!(
            resources[1]["resource"]["attributes"][0]["value"]["stringValue"],
            "mail\"x"
        );
        let record = &scopes[0]["logRecords"][0];
        assert_eq!(record["timeUnixNano"], "1700000000123456000");
        assert_eq!(record["observedTimeUnixNano"], "1700000000223456000");
        assert_eq!(record["severityNumber"], 9);
        assert_eq!(record["traceId"], "00000000000000000000000000000abc");
        assert_eq!(record["spanId"], "0000000000000012");
        assert_eq!(record["flags"], 1);
        assert_eq!(
            record["attributes"],
            json!([
                {"key": "code.filepath", "value": {"stringValue": "app.py"}},
                {"key": "code.file.path", "value": {"stringValue": "app.py"}},
                {"key": "code.lineno", "value": {"intValue": "7"}},
                {"key": "code.line.number", "value": {"intValue": "7"}},
                {"key": "user", "value": {"stringValue": "u-1"}},
            ])
        );
    }

    #[test]
    fn attributes_over_the_limit_are_left_out_and_named() {
        let head = test_head(" ");
        let limits = Limits {
            max_string_bytes: usize::MAX,
            max_metadata_bytes: 1024,
        };
        let mut w = EntryWriter::otlp(&head, limits);
        w.field("big").expect("new").string(&"x".repeat(1000));
        w.field("small").expect("new").int(1);
        assert!(w.field("small").is_none(), "first writer wins");
        let entry = w.finish();
        let (_, _, record) = split_entry(&entry);
        let v: Value = serde_json::from_slice(record).expect("valid JSON");
        let keys: Vec<&str> = v["attributes"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|a| a["key"].as_str())
            .collect();
        assert_eq!(keys, ["small", "_truncated"]);
        assert_eq!(
            v["body"]["stringValue"],
            crate::protocol::EMPTY_MESSAGE_PLACEHOLDER
        );
        assert!(v.get("traceId").is_none());
    }

    #[test]
    fn partial_success_counts_as_string_or_number() {
        let reply = json!({"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "bad"}});
        assert_eq!(partial_success(&reply), Some((3, Some("bad".into()))));
        let reply = json!({"partialSuccess": {"rejectedLogRecords": 2}});
        assert_eq!(partial_success(&reply), Some((2, None)));
        assert_eq!(partial_success(&json!({})), None);
    }
}

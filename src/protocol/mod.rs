//! The two wire formats, each the only owner of its layout: where requests go, what an
//! entry looks like, how a batch is wrapped, what a 2xx reply says. `logwell` is
//! Logwell's simple API, `otlp` OTLP/HTTP JSON. The entry writer (`record`), the
//! transport and the worker call into them and know neither.

pub mod logwell;
pub mod otlp;

use crate::errors::Error;
use crate::json::ValueStyle;

/// The wire format of the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Logwell's simple API: a JSON array of entries to `/v1/ingest`.
    Logwell,
    /// OTLP/HTTP JSON to `/v1/logs`: Logwell's OpenTelemetry route, or any collector.
    Otlp,
}

impl Protocol {
    pub fn parse(s: &str) -> Result<Protocol, Error> {
        match s {
            "" | "logwell" => Ok(Protocol::Logwell),
            "otlp" => Ok(Protocol::Otlp),
            other => Err(Error::InvalidConfig {
                field: "protocol",
                problem: format!("must be 'logwell' or 'otlp', got {other:?}"),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Logwell => "logwell",
            Protocol::Otlp => "otlp",
        }
    }

    /// The path requests go to under the endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Protocol::Logwell => logwell::PATH,
            Protocol::Otlp => otlp::PATH,
        }
    }

    /// The largest `batch_size` a receiver of this protocol takes.
    pub fn max_batch_size(self) -> usize {
        match self {
            Protocol::Logwell => logwell::MAX_ENTRIES_PER_REQUEST,
            Protocol::Otlp => otlp::MAX_BATCH_SIZE,
        }
    }

    /// How metadata values are written: as plain JSON, or as OTLP's typed `AnyValue`.
    pub fn value_style(self) -> ValueStyle {
        match self {
            Protocol::Logwell => ValueStyle::Plain,
            Protocol::Otlp => ValueStyle::AnyValue,
        }
    }

    /// The request body for a batch of encoded entries. `resource_attributes`: OTLP's
    /// encoded `KeyValue`s every resource carries besides `service.name`.
    pub fn batch_body<'a>(
        self,
        entries: impl Iterator<Item = &'a [u8]>,
        size_hint: usize,
        resource_attributes: &[u8],
    ) -> Vec<u8> {
        match self {
            Protocol::Logwell => logwell::batch_body(entries, size_hint),
            Protocol::Otlp => otlp::batch_body(entries, size_hint, resource_attributes),
        }
    }

    /// What a 2xx reply to a batch of `entries` says.
    pub fn read_reply(self, body: &[u8], entries: u64) -> Result<Reply, Error> {
        match self {
            Protocol::Logwell => logwell::read_reply(body, entries),
            Protocol::Otlp => otlp::read_reply(body, entries),
        }
    }
}

/// What a 2xx reply said about the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub accepted: u64,
    pub rejected: u64,
    /// The "rejected" count as the server wrote it, when it did.
    pub said_rejected: Option<u64>,
    /// The server's per-entry reasons ("Entry at index i: ...").
    pub errors: Vec<String>,
}

/// Shown in place of a message that is blank after trimming: Logwell refuses those, in
/// either protocol.
pub const EMPTY_MESSAGE_PLACEHOLDER: &str = "(empty message)";

/// The message as sent.
pub fn shown_message(message: &str) -> &str {
    if message.trim().is_empty() {
        EMPTY_MESSAGE_PLACEHOLDER
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named_and_an_unknown_one_is_refused() {
        for protocol in [Protocol::Logwell, Protocol::Otlp] {
            assert_eq!(Protocol::parse(protocol.name()), Ok(protocol));
        }
        assert_eq!(Protocol::parse(""), Ok(Protocol::Logwell));
        let Err(Error::InvalidConfig { field, problem }) = Protocol::parse("grpc") else {
            panic!("grpc is no protocol");
        };
        assert_eq!(field, "protocol");
        assert!(problem.contains("'logwell' or 'otlp'"), "{problem}");
    }
}

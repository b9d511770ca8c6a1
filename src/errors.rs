//! The one error type of the core, and the codes it shares with Logwell's official SDKs.

use std::time::Duration;

/// The error codes of Logwell's official SDKs; `as_str` is the Python `ErrorCode` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    NetworkError,
    Unauthorized,
    ValidationError,
    RateLimited,
    ServerError,
    QueueOverflow,
    InvalidConfig,
    /// Ours, not the official SDKs': they have no spool.
    SpoolError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NetworkError => "NETWORK_ERROR",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ServerError => "SERVER_ERROR",
            ErrorCode::QueueOverflow => "QUEUE_OVERFLOW",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::SpoolError => "SPOOL_ERROR",
        }
    }
}

/// Longest server-provided detail kept in an error message.
const MAX_DETAIL_CHARS: usize = 300;

/// A server's words as error detail: on one line, cut at `MAX_DETAIL_CHARS`.
pub fn detail(s: &str) -> String {
    one_line(s, MAX_DETAIL_CHARS)
}

/// `s` with each run of whitespace (newlines too) as one space, cut at `max_chars`.
pub fn one_line(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut chars = 0;
    for word in s.split_whitespace() {
        if chars > 0 {
            out.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= max_chars {
                out.push_str("...");
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

fn config_heading(field: &str) -> String {
    match field {
        "api_key" => "Invalid API key format".to_owned(),
        "endpoint" => "Invalid endpoint URL".to_owned(),
        other => format!("Invalid {other}"),
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Worded as the official SDKs word it, so that code matching on it moves over:
    /// "Invalid API key format: ...", "Invalid endpoint URL: ...", "Invalid {field}: ...".
    #[error("{}: {problem}", config_heading(field))]
    InvalidConfig {
        field: &'static str,
        problem: String,
    },

    #[error("Configuration missing '{field}': {hint}")]
    MissingConfig {
        field: &'static str,
        hint: &'static str,
    },

    /// A log call with an argument the server would refuse (client API only; records
    /// from `logging` are repaired instead).
    #[error("invalid log entry: {0}")]
    InvalidEntry(String),

    /// Connection refused, DNS failure, timeout, broken connection.
    #[error("network error: {0}")]
    Network(String),

    /// The server answered with a status other than 2xx.
    #[error("server answered HTTP {status}: {detail}")]
    Http {
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },

    /// The server answered 2xx but refused some entries of the batch.
    #[error("server rejected {rejected} of {total} entries: {reasons}")]
    Rejected {
        rejected: u64,
        total: u64,
        reasons: String,
    },

    /// The server answered 2xx with a body that is not the ingest reply.
    #[error("unreadable reply from server (entries counted as sent): {0}")]
    BadReply(String),

    #[error(
        "{dropped} log entries dropped: the buffer was full (max_queue_size or max_queue_bytes)"
    )]
    QueueOverflow { dropped: u64 },

    #[error("{count} log entries could not be delivered before the shutdown deadline")]
    Undelivered { count: u64 },

    /// A close deadline passed with a request still out: not lost yet, not delivered.
    #[error(
        "{count} log entries were in a request still unanswered at the shutdown deadline: \
         they are lost unless the server answers before the process exits"
    )]
    Unanswered { count: u64 },

    /// The spool could not be written or read; memory does its work meanwhile.
    #[error("spool {0}")]
    Spool(String),

    /// A panic caught at the edge: a bug of ours, reported instead of crossing into Python.
    #[error("internal error in {what}: {detail} (please report it)")]
    Internal { what: &'static str, detail: String },
}

/// What a caught panic said.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidConfig { .. } | Error::MissingConfig { .. } => ErrorCode::InvalidConfig,
            Error::Network(_) | Error::Undelivered { .. } | Error::Unanswered { .. } => {
                ErrorCode::NetworkError
            }
            Error::Http { status, .. } => match status {
                401 | 403 => ErrorCode::Unauthorized,
                429 => ErrorCode::RateLimited,
                408 => ErrorCode::NetworkError,
                s if *s >= 500 => ErrorCode::ServerError,
                _ => ErrorCode::ValidationError,
            },
            Error::Rejected { .. } | Error::InvalidEntry(_) | Error::Internal { .. } => {
                ErrorCode::ValidationError
            }
            Error::BadReply(_) => ErrorCode::ServerError,
            Error::QueueOverflow { .. } => ErrorCode::QueueOverflow,
            Error::Spool(_) => ErrorCode::SpoolError,
        }
    }

    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether sending the same batch again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Network(_) => true,
            Error::Http { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Whether the failure may come from the batch itself rather than from the server's
    /// state: a 500 (a store that fails on what it was given). Gateways' 502, 503 and 504
    /// speak of the server, never of the batch.
    pub fn may_be_poison(&self) -> bool {
        matches!(self, Error::Http { status, .. } if *status >= 500 && !matches!(status, 502..=504))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> Error {
        Error::Http {
            status,
            detail: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn http_statuses_map_to_sdk_codes() {
        assert_eq!(http(401).code(), ErrorCode::Unauthorized);
        assert_eq!(http(400).code(), ErrorCode::ValidationError);
        assert_eq!(http(413).code(), ErrorCode::ValidationError);
        assert_eq!(http(415).code(), ErrorCode::ValidationError);
        assert_eq!(http(429).code(), ErrorCode::RateLimited);
        assert_eq!(http(503).code(), ErrorCode::ServerError);
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(http(s).retryable(), "{s}");
        }
        for s in [400, 401, 403, 413, 415, 422] {
            assert!(!http(s).retryable(), "{s}");
        }
        assert!(Error::Network("refused".into()).retryable());
        assert!(!Error::QueueOverflow { dropped: 1 }.retryable());
    }
}

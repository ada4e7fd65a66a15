//! What can go wrong with an XML interface command, typed so that callers
//! can tell a cash server that is down from one that said no, and one that
//! said no from an answer nobody can read.
//!
//! The outcome of a command is the answer's `Status`, not the HTTP status
//! (almost always 200, even on errors): a readable `<RK7QueryResult>` with a
//! failing `Status` is [`Error::Status`] whatever the HTTP status was, and
//! the HTTP status only matters ([`Error::Http`]) when the body is not an
//! `<RK7QueryResult>` at all (a 401 from a wrong password, a proxy's page).
//!
//! No error carries a body that is not r_keeper's own structured answer:
//! the URL of a "cash server" can be pointed anywhere, and a message that
//! quoted what answered would read out internal services (an SSRF that
//! echoes). An error says the status and why; the `ErrorText` of a real
//! `<RK7QueryResult>` stays, since it is the cash server's own words.

use std::time::Duration;

use crate::read::ReadError;

use super::model::Status;

/// An XML interface command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No complete answer within the timeout. The cash server may take up
    /// to about a minute on commands that open a window on a station, so a
    /// short timeout can fire on a server that is only slow.
    #[error(
        "no answer from the cash server within {0:?} (it may hang for about a minute \
         on commands that open a window on a station)"
    )]
    Timeout(Duration),
    /// The request did not get through: connection refused or reset, TLS,
    /// DNS, or the body broke off.
    #[error("cannot talk to the cash server: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The cash server's certificate is not the pinned one (or TLS refused
    /// it otherwise); says which fingerprint it presented.
    #[error("TLS: {0}")]
    Certificate(String),
    /// The base URL given to the client is not usable.
    #[error("bad cash server URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// An HTTP error status with a body that is not an `<RK7QueryResult>`
    /// (401: the user or password is wrong, or the employee lacks the
    /// "HTTP Access" right). The body is not kept: it is not r_keeper's.
    #[error("HTTP {status}{} from the cash server", reason(*status))]
    Http {
        /// The HTTP status code.
        status: u16,
    },
    /// The server answered with a redirect (3xx). It is not followed: a
    /// cash server never redirects, and following one would let whoever
    /// answers send tillgate's request (with the employee's password) to
    /// any address, inside the network too. Where it pointed is not said.
    #[error("HTTP {status}{} from the cash server: a redirect, which is not followed", reason(*status))]
    Redirect {
        /// The HTTP status code (300 to 399).
        status: u16,
    },
    /// The answer is larger than the client reads ([`Client::MAX_BODY`]):
    /// not an answer of the XML interface, and not to be held in memory.
    ///
    /// [`Client::MAX_BODY`]: super::Client::MAX_BODY
    #[error("the answer is larger than {limit} bytes; not read")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The cash server answered, with a `Status` other than `Ok` /
    /// `No changes`.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The body is not a readable `<RK7QueryResult>`, or a value in it is
    /// malformed; says what, where (byte offset, element path) and why.
    #[error("unreadable answer: {0}")]
    Unreadable(#[from] ReadError),
}

/// The status's standard reason (` Unauthorized`), empty when it has none.
fn reason(status: u16) -> String {
    http_reason(status).map_or_else(String::new, |r| format!(" {r}"))
}

/// The standard reasons of the statuses a cash server or what stands in
/// its place may answer (a short fixed list: the crate does not depend on
/// `http` without the client feature).
fn http_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

impl From<Box<ReadError>> for Error {
    fn from(e: Box<ReadError>) -> Self {
        Self::Unreadable(*e)
    }
}

impl Error {
    /// The cash server's refusal, if that is what this is.
    pub fn status(&self) -> Option<&StatusError> {
        match self {
            Self::Status(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the command timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }
}

/// A readable answer whose `Status` says the command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct StatusError {
    /// The kind of failure.
    pub status: Status,
    /// `CMD` of the answer: the command that failed.
    pub cmd: Option<String>,
    /// `ErrorText` (None when empty).
    pub error_text: Option<String>,
    /// `RK7ErrorN`, when sent.
    pub error_n: Option<i64>,
}

impl StatusError {
    /// `RK7ErrorN` 2172 (UCSERR(2172)): the common shift is being closed;
    /// every request fails until it is done.
    pub const SHIFT_CLOSING: i64 = 2172;
    /// `RK7ErrorN` 2133: the common shift has been open too long; new orders
    /// are blocked.
    pub const SHIFT_TOO_LONG: i64 = 2133;

    /// Whether this is [`StatusError::SHIFT_CLOSING`]: retry later.
    pub fn is_shift_closing(&self) -> bool {
        self.error_n == Some(Self::SHIFT_CLOSING)
    }

    fn describe(&self) -> String {
        let mut s = String::from("the cash server answered ");
        if let Some(cmd) = &self.cmd {
            s.push_str(cmd);
            s.push(' ');
        }
        s.push_str(&format!("with Status {:?}", self.status.as_str()));
        if let Some(t) = &self.error_text {
            s.push_str(": ");
            s.push_str(t);
        }
        if let Some(n) = self.error_n {
            s.push_str(&format!(" (RK7ErrorN {n})"));
        }
        s
    }
}

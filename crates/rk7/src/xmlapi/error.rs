//! What can go wrong with an XML interface command, typed so that callers
//! can tell a cash server that is down from one that said no, and one that
//! said no from an answer nobody can read.
//!
//! The outcome of a command is the answer's `Status`, not the HTTP status
//! (almost always 200, even on errors): a readable `<RK7QueryResult>` with a
//! failing `Status` is [`Error::Status`] whatever the HTTP status was, and
//! the HTTP status only matters ([`Error::Http`]) when the body is not an
//! `<RK7QueryResult>` at all (a 401 from a wrong password, a proxy's page).

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
    /// "HTTP Access" right).
    #[error("HTTP {status} from the cash server{}", body_suffix(body))]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the body (lossy UTF-8, at most 256 characters).
        body: String,
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

fn body_suffix(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {body:?}")
    }
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

//! The r_keeper 7 XML interface: building requests, reading answers into
//! typed models, and (feature `client`) an async HTTP client, so that
//! tillgate can ask a cash server about its orders and references instead of
//! only listening to its notify events.
//!
//! The interface is `POST https://host:port/rk7api/v0/xmlinterface.xml` with
//! HTTP Basic authentication (an employee holding the "HTTP Access" right)
//! and a UTF-8 XML body sent as `Content-Type: application/xml` (a body sent
//! as a form is read as empty and answered `Query Parse Error`). One request
//! is one `<RK7Query><RK7CMD CMD="..."/></RK7Query>` ([`Request`]); the answer
//! is `<RK7QueryResult Status="..." ...>` with the data inside, and its
//! `Status`, not the HTTP status, is the outcome ([`Error`]).
//!
//! Without the `client` feature this module only builds bodies and reads
//! answers, so any HTTP stack can carry them:
//!
//! ```
//! use rk7::xmlapi::{self, Request};
//!
//! let body = Request::get_system_info().to_xml();
//! assert!(body.contains(r#"<RK7CMD CMD="GetSystemInfo"/>"#));
//!
//! let answer = br#"<?xml version="1.0" encoding="utf-8"?>
//! <RK7QueryResult ServerVersion="7.6.5.92" XmlVersion="246" Status="Ok"
//!     CMD="GetSystemInfo" ErrorText="" DateTime="2020-02-12T20:28:51">
//!   <SystemInfo NetName="MIDSERV" RestCode="199990093" ShiftDate="2020-02-12T00:00:00">
//!     <Restaurant id="1001" code="1" name="Main Street"/>
//!   </SystemInfo>
//! </RK7QueryResult>"#;
//! let info = xmlapi::read_system_info(answer)?;
//! assert_eq!(info.server_version.as_deref(), Some("7.6.5.92"));
//! assert_eq!(info.restaurant_name(), Some("Main Street"));
//! # Ok::<(), xmlapi::Error>(())
//! ```
//!
//! Files: `request.rs` (request bodies), `answer.rs` (reading answers),
//! `model.rs` (the typed answers), `error.rs` (what can fail) and, with the
//! `client` feature, `client.rs` (the HTTP client).

mod answer;
#[cfg(feature = "client")]
mod client;
mod error;
mod model;
mod request;
#[cfg(feature = "client")]
mod subscribe;
#[cfg(feature = "client")]
mod tls;

pub use answer::{
    read_http_answer, read_order, read_order_list, read_query_result, read_reference,
    read_system_info,
};
#[cfg(feature = "client")]
pub use client::Client;
pub use error::{Error, StatusError};
pub use model::{
    Cash, CommonShift, Employee, OrderList, OrderListItem, OrderListVisit, QueryResult, RefItem,
    Reference, Restaurant, Status, SystemInfo,
};
pub use request::{Element, OrderKey, OrderListQuery, RefDataQuery, Request};
#[cfg(feature = "client")]
pub use subscribe::{
    SUBSCRIBE_PATH, SUBSCRIPTIONS_SINCE, Subscriptions, read_subscriptions, supports_subscriptions,
};
#[cfg(feature = "client")]
pub use tls::{Fingerprint, Trust, http_client};

/// The path of the XML interface on the cash server.
pub const PATH: &str = "/rk7api/v0/xmlinterface.xml";

/// The `Content-Type` requests are sent with; a form body would be read as
/// empty.
pub const CONTENT_TYPE: &str = "application/xml; charset=utf-8";

/// `RefName` of the cash stations reference.
pub const CASHES: &str = "CASHES";
/// `RefName` of the restaurants reference.
pub const RESTAURANTS: &str = "RESTAURANTS";
/// `RefName` of the employees reference.
pub const EMPLOYEES: &str = "EMPLOYEES";

#[cfg(test)]
mod tests;

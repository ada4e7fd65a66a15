//! The async XML-interface client over reqwest (feature `client`), so that
//! asking a cash server is one call returning a typed model, with the
//! transport, the answer's Status and the timeout already turned into
//! [`Error`].
//!
//! TLS is whatever the `reqwest::Client` does: [`Client::new`] builds a
//! default one (which refuses the self-signed certificates cash servers
//! usually have); [`Client::with_http`] takes one built by the caller, with
//! its own certificate verifier.
//!
//! Redirects are never followed: the clients built here have no redirect
//! policy, and a 3xx that reaches the client is [`Error::Redirect`] whatever
//! the caller's `reqwest::Client` does. A cash server does not redirect; a
//! "cash server" that does is pointing tillgate (with the employee's
//! password) at another address, possibly one inside the network.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};

use crate::model::Order;

use super::answer::{
    read_http_answer, read_order, read_order_list, read_query_result, read_reference,
    read_system_info,
};
use super::error::Error;
use super::model::{
    Cash, Employee, OrderList, QueryResult, RefItem, Reference, Restaurant, SystemInfo,
};
use super::request::{OrderKey, OrderListQuery, RefDataQuery, Request};
use super::tls::{PinSlot, Trust, chain, pinned_client};
use super::{CASHES, CONTENT_TYPE as XML, EMPLOYEES, PATH, RESTAURANTS};

/// A client of one cash server's XML interface.
///
/// Cheap to clone (the `reqwest::Client` inside is shared). `Debug` does not
/// show the password.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The cash server's address as given (for the subscription endpoint).
    base: Url,
    url: Url,
    user: String,
    password: SecretString,
    timeout: Duration,
    /// Where a pinning verifier reports a mismatch (clients made by
    /// [`Client::with_trust`]).
    pin_slot: Option<PinSlot>,
}

impl Client {
    /// The timeout of each request unless [`Client::with_timeout`] sets another.
    /// The read commands answer in well under a second; a command that opens
    /// a window on a station can take about a minute.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// The most of an answer the client reads: a day's `GetOrderList` of a
    /// large restaurant is a few megabytes; whatever sends more is not a
    /// cash server and must not fill tillgate's memory.
    pub const MAX_BODY: usize = 64 << 20;

    /// A client with a default `reqwest::Client`.
    ///
    /// `base_url` is the cash server's address with its "HTTP Data Port"
    /// (`https://10.0.0.5:4545`); the interface's path is added to it unless
    /// it already ends with it. `user` and `password` are an employee's
    /// (Basic authentication, UTF-8).
    pub fn new(
        base_url: &str,
        user: impl Into<String>,
        password: SecretString,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Transport(Box::new(e)))?;
        Self::with_http(http, base_url, user, password)
    }

    /// A client over a `reqwest::Client` the caller built (its TLS settings,
    /// proxies, connection pool); see [`Client::new`] for the rest. Build it
    /// with `redirect::Policy::none()` (as [`super::http_client`] does): a
    /// redirect the caller's client follows never reaches this one to be
    /// refused.
    pub fn with_http(
        http: reqwest::Client,
        base_url: &str,
        user: impl Into<String>,
        password: SecretString,
    ) -> Result<Self, Error> {
        let url = endpoint(base_url)?;
        let mut base = url.clone();
        let path = base.path().trim_end_matches(PATH).to_string();
        base.set_path(&path);
        Ok(Self {
            http,
            base,
            url,
            user: user.into(),
            password,
            timeout: Self::DEFAULT_TIMEOUT,
            pin_slot: None,
        })
    }

    /// The same client with another per-request timeout (the whole request:
    /// connecting, sending, and reading the answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL requests are posted to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The cash server's base address (without the interface's path).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// A client that trusts the server's certificate as `trust` says
    /// ([`Trust::Pinned`] for the usual self-signed one).
    pub fn with_trust(
        base_url: &str,
        user: impl Into<String>,
        password: SecretString,
        trust: Trust,
    ) -> Result<Self, Error> {
        let (http, slot) = pinned_client(trust, Self::DEFAULT_TIMEOUT)?;
        let mut c = Self::with_http(http, base_url, user, password)?;
        c.pin_slot = Some(slot);
        Ok(c)
    }

    /// The request builder with this client's credentials and timeout.
    pub(super) fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .basic_auth(&self.user, Some(self.password.expose_secret()))
            .timeout(self.timeout)
    }

    /// A transport failure as the caller should see it: a timeout, a
    /// certificate that is not the pinned one, or the whole error chain.
    pub(super) fn transport(&self, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            return Error::Timeout(self.timeout);
        }
        if let Some(m) = self
            .pin_slot
            .as_ref()
            .and_then(|s| s.lock().ok().and_then(|mut s| s.take()))
        {
            return Error::Certificate(m);
        }
        Error::Transport(chain(&e).into())
    }

    /// `GetSystemInfo`: version, restaurant, the common shift's date.
    pub async fn get_system_info(&self) -> Result<SystemInfo, Error> {
        self.call(&Request::get_system_info(), read_system_info)
            .await
    }

    /// `GetSystemInfo2`: as [`Client::get_system_info`], with the common
    /// shift's number.
    pub async fn get_system_info2(&self) -> Result<SystemInfo, Error> {
        self.call(&Request::get_system_info2(), read_system_info)
            .await
    }

    /// `GetOrderList`. With [`OrderListQuery::last_version`] set and nothing
    /// changed, the answer is [`OrderList::unchanged`]; its `last_version`
    /// is then the one sent, unless the server gave one.
    pub async fn get_order_list(&self, query: &OrderListQuery) -> Result<OrderList, Error> {
        let mut list = self
            .call(&Request::get_order_list(query), read_order_list)
            .await?;
        if list.unchanged && list.last_version.is_none() {
            list.last_version = query.last_version;
        }
        Ok(list)
    }

    /// `GetOrder`: one order with its sessions and lines.
    pub async fn get_order(&self, key: &OrderKey) -> Result<Order, Error> {
        self.call(&Request::get_order(key), read_order).await
    }

    /// `GetRefData` of the `CASHES` reference.
    pub async fn get_cashes(&self, query: &RefDataQuery) -> Result<Reference<Cash>, Error> {
        self.get_ref_data(CASHES, query).await
    }

    /// `GetRefData` of the `RESTAURANTS` reference.
    pub async fn get_restaurants(
        &self,
        query: &RefDataQuery,
    ) -> Result<Reference<Restaurant>, Error> {
        self.get_ref_data(RESTAURANTS, query).await
    }

    /// `GetRefData` of the `EMPLOYEES` reference.
    pub async fn get_employees(&self, query: &RefDataQuery) -> Result<Reference<Employee>, Error> {
        self.get_ref_data(EMPLOYEES, query).await
    }

    /// `GetRefData` of any reference, with items of any of the reference
    /// item types ([`RefItem`] for the general one).
    pub async fn get_ref_data<T: From<RefItem>>(
        &self,
        ref_name: &str,
        query: &RefDataQuery,
    ) -> Result<Reference<T>, Error> {
        self.call(&Request::get_ref_data(ref_name, query), read_reference)
            .await
    }

    /// Any command: the answer's header, with its data as unknown elements
    /// in [`QueryResult::extra`].
    pub async fn execute(&self, request: &Request) -> Result<QueryResult, Error> {
        self.call(request, read_query_result).await
    }

    /// Posts the request and reads the answer with `read`.
    async fn call<T>(
        &self,
        request: &Request,
        read: impl FnOnce(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (status, body) = self.post(request).await?;
        read_http_answer(status, &body, read)
    }

    /// The HTTP exchange: the status and the whole body.
    async fn post(&self, request: &Request) -> Result<(u16, Vec<u8>), Error> {
        self.exchange(
            self.request(reqwest::Method::POST, self.url.clone())
                .header(CONTENT_TYPE, XML)
                .body(request.to_xml()),
        )
        .await
    }

    /// Sends a request: the status and the whole body, or
    /// [`Error::Redirect`] for a 3xx (its body and `Location` are not read),
    /// or [`Error::TooLarge`] past [`Client::MAX_BODY`].
    pub(super) async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), Error> {
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(Error::Redirect {
                status: status.as_u16(),
            });
        }
        let too_large = Error::TooLarge {
            limit: Self::MAX_BODY,
        };
        if response
            .content_length()
            .is_some_and(|n| n > Self::MAX_BODY as u64)
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > Self::MAX_BODY {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status.as_u16(), body))
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The interface's URL from the cash server's base URL.
fn endpoint(base_url: &str) -> Result<Url, Error> {
    let bad = |reason: String| Error::Url {
        url: base_url.to_owned(),
        reason,
    };
    let mut url = Url::parse(base_url.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(bad("no host".into()));
    }
    if !url.path().ends_with(PATH) {
        let path = format!("{}{PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_adds_the_path_once() {
        for (base, want) in [
            (
                "https://10.0.0.5:4545",
                "https://10.0.0.5:4545/rk7api/v0/xmlinterface.xml",
            ),
            (
                "https://10.0.0.5:4545/",
                "https://10.0.0.5:4545/rk7api/v0/xmlinterface.xml",
            ),
            (
                "https://h:1/rk7api/v0/xmlinterface.xml",
                "https://h:1/rk7api/v0/xmlinterface.xml",
            ),
            (
                "http://h/proxy/",
                "http://h/proxy/rk7api/v0/xmlinterface.xml",
            ),
        ] {
            assert_eq!(endpoint(base).unwrap().as_str(), want, "{base}");
        }
        for bad in ["", "10.0.0.5:4545", "ftp://h/", "not a url"] {
            assert!(matches!(endpoint(bad), Err(Error::Url { .. })), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Client::new("https://h:1", "admin", SecretString::from("s3cret")).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("admin") && d.contains("REDACTED"), "{d}");
    }
}

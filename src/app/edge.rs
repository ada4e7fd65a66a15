//! The edge every request passes: what a browser is told about each answer,
//! and who may reach a server that has no operator token.
//!
//! tillgate is reached by cash servers, registers, proxies and browsers,
//! and a browser tab on the same machine may belong to anyone. Three rules,
//! one place (docs/security.md is the trust model in words):
//!
//! * **Every answer** carries `nosniff`, `X-Frame-Options: DENY` and a
//!   `Content-Security-Policy`: the console sets its own; anything else
//!   (the operator API, raw event bodies, metrics) gets `default-src 'none';
//!   sandbox`, so even a stored body a browser was tricked into opening is
//!   a sandboxed document that runs nothing.
//! * **Without an operator token** the server listens on loopback only, and
//!   "on loopback" must also mean "asked for by a loopback name": a request
//!   whose `Host` is some other name (DNS rebinding: `attacker.example`
//!   re-pointed at 127.0.0.1) is refused, unless the name is one of
//!   `[http] public_hosts`. A state-changing request a browser marks as
//!   coming from another site (`Sec-Fetch-Site`, else `Origin`) is refused,
//!   and a body sent to the operator API must say a content type no HTML
//!   form can send (`application/json`, `text/csv`): a page elsewhere can
//!   make a browser post `text/plain`, never `application/json` without the
//!   server's consent (CORS preflight, which tillgate never grants).
//! * **Ingest paths** refuse cross-site browser posts whatever the mode: a
//!   cash server's driver sends neither `Origin` nor `Sec-Fetch-Site`, so
//!   only a browser tricked by another site's page ever does.
//!
//! With a token the operator API is not reachable by a browser's ambient
//! credentials at all (a bearer token is never sent by itself), and the
//! console guards itself with SameSite cookies and CSRF tokens.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::core::api_error::ApiError;

/// The policy for anything that is not a console page: nothing loads,
/// nothing runs, nothing frames it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// What the edge needs to decide.
#[derive(Clone)]
pub struct Edge {
    /// No operator token: the loopback-only mode the rules above guard.
    pub tokenless: bool,
    /// `[http] public_hosts`, lower case.
    pub public_hosts: Arc<Vec<String>>,
    /// The paths cash servers post to.
    pub ingest_paths: &'static [&'static str],
}

/// The layer: checks the request, then puts the browser protections on
/// whatever answers it.
pub async fn guard(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let refused = edge.check(&req);
    let mut res = match refused {
        Some(e) => {
            tracing::warn!(
                method = %req.method(),
                path = ?req.uri().path(),
                host = ?host_of(&req),
                reason = e.code(),
                "request refused at the edge"
            );
            e.into_response()
        }
        None => next.run(req).await,
    };
    protect(res.headers_mut());
    res
}

/// Sets the headers every answer carries, keeping a stricter policy a
/// handler set itself (the console's CSP).
pub fn protect(h: &mut HeaderMap) {
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::REFERRER_POLICY) {
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
}

/// Why the edge refused a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` is not a loopback name nor a configured public host.
    BadHost,
    /// A browser says another site's page sent this change.
    CrossSite,
    /// A body to the operator API in a type an HTML form can send.
    FormBody,
}

impl Refusal {
    fn code(&self) -> &'static str {
        match self {
            Refusal::BadHost => "bad_host",
            Refusal::CrossSite => "cross_site",
            Refusal::FormBody => "unsupported_media_type",
        }
    }

    fn into_response(self) -> Response {
        let code = self.code();
        match self {
            Refusal::BadHost => ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                code,
                "without an api_token this server answers only to loopback names (localhost, 127.0.0.1, [::1]); add the name to [http] public_hosts or set api_token",
            ),
            Refusal::CrossSite => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "a change sent by another site's page is refused",
            ),
            Refusal::FormBody => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code,
                "send the body as Content-Type: application/json (text/csv where a route takes CSV)",
            ),
        }
        .into_response()
    }
}

impl Edge {
    /// `None` when the request may go on.
    pub fn check(&self, req: &Request) -> Option<Refusal> {
        let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let path = req.uri().path();
        let ingest = self.ingest_paths.contains(&path);
        if self.tokenless
            && let Some(host) = host_of(req)
            && !self.host_allowed(&host)
        {
            return Some(Refusal::BadHost);
        }
        if changes && (self.tokenless || ingest) && cross_site(req.headers(), host_of(req)) {
            return Some(Refusal::CrossSite);
        }
        None
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if self.public_hosts.contains(&host) {
            return true;
        }
        let name = strip_port(&host);
        if self.public_hosts.iter().any(|h| h == name) {
            return true;
        }
        is_loopback_name(name)
    }
}

/// The name the client asked for: `Host`, or the URI's authority (HTTP/2).
fn host_of(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
}

/// `host` without a trailing `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Names that can only mean this machine: `localhost` (and, as browsers
/// resolve them, its subdomains), 127.0.0.0/8 and `[::1]`.
fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok_and(|a| {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        });
    }
    name.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| a.is_loopback())
}

/// Whether a browser marks the request as sent by another site's page.
/// `Sec-Fetch-Site` is the browser's own verdict where it is sent; older
/// browsers send only `Origin`, which must then name the host asked for.
fn cross_site(h: &HeaderMap, host: Option<String>) -> bool {
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = h.get(header::ORIGIN) else {
        return false;
    };
    let Some(origin) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        // "null" (a sandboxed frame, a file) or garbage: no site of ours.
        return true;
    };
    let Some(host) = host else {
        return true;
    };
    let origin_host = match (origin.host_str(), origin.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return true,
    };
    !origin_host.eq_ignore_ascii_case(&host) && !origin_host.eq_ignore_ascii_case(strip_port(&host))
}

/// The operator API without a token: a change whose body is of a type an
/// HTML form can send is refused (the router puts this on the operator
/// routes only: ingest and the registers' routes have their own callers).
pub fn operator_body(req: &Request) -> Option<Response> {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    (changes && form_body(req.headers())).then(|| Refusal::FormBody.into_response())
}

/// A body whose type an HTML form or a no-CORS `fetch` can send.
fn form_body(h: &HeaderMap) -> bool {
    let has_body = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|n| n.trim() != "0")
        && (h.contains_key(header::CONTENT_LENGTH) || h.contains_key(header::TRANSFER_ENCODING));
    if !has_body {
        return false;
    }
    let Some(ct) = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data" | ""
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn edge(tokenless: bool) -> Edge {
        Edge {
            tokenless,
            public_hosts: Arc::new(vec!["tillgate.example.com".into()]),
            ingest_paths: &["/rkevent"],
        }
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn loopback_names_and_public_hosts_pass_others_do_not() {
        let e = edge(true);
        for ok in [
            "127.0.0.1:11130",
            "localhost",
            "LOCALHOST:1",
            "a.localhost:9",
            "127.1.2.3",
            "[::1]:11130",
            "tillgate.example.com",
            "tillgate.example.com:443",
        ] {
            assert_eq!(
                e.check(&req("GET", "/api/events", &[("host", ok)])),
                None,
                "{ok}"
            );
        }
        for bad in [
            "attacker-rebind.example",
            "attacker-rebind.example:11130",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::2]",
            "10.0.0.1:11130",
        ] {
            assert_eq!(
                e.check(&req("GET", "/api/events/1/raw", &[("host", bad)])),
                Some(Refusal::BadHost),
                "{bad}"
            );
        }
        // With a token the name is not checked (behind proxies, clusters).
        assert_eq!(
            edge(false).check(&req("GET", "/api/events", &[("host", "attacker.example")])),
            None
        );
    }

    #[test]
    fn cross_site_changes_are_refused_same_origin_ones_pass() {
        let e = edge(true);
        let h = ("host", "127.0.0.1:11130");
        assert_eq!(
            e.check(&req(
                "POST",
                "/rkevent",
                &[h, ("sec-fetch-site", "cross-site")]
            )),
            Some(Refusal::CrossSite)
        );
        assert_eq!(
            e.check(&req(
                "POST",
                "/logout",
                &[h, ("origin", "https://evil.example")]
            )),
            Some(Refusal::CrossSite)
        );
        assert_eq!(
            e.check(&req("POST", "/logout", &[h, ("origin", "null")])),
            Some(Refusal::CrossSite)
        );
        assert_eq!(
            e.check(&req(
                "POST",
                "/logout",
                &[h, ("origin", "http://127.0.0.1:11130")]
            )),
            None
        );
        assert_eq!(
            e.check(&req(
                "POST",
                "/logout",
                &[h, ("sec-fetch-site", "same-origin")]
            )),
            None
        );
        // A cash server sends neither.
        assert_eq!(e.check(&req("POST", "/rkevent", &[h])), None);
        // A GET is never a change.
        assert_eq!(
            e.check(&req("GET", "/", &[h, ("sec-fetch-site", "cross-site")])),
            None
        );
        // With a token: ingest still refuses browsers from elsewhere, the
        // rest is the token's business.
        let t = edge(false);
        assert_eq!(
            t.check(&req(
                "POST",
                "/rkevent",
                &[h, ("sec-fetch-site", "cross-site")]
            )),
            Some(Refusal::CrossSite)
        );
        assert_eq!(
            t.check(&req(
                "POST",
                "/api/relay/destinations",
                &[h, ("origin", "https://evil.example")]
            )),
            None
        );
    }

    #[test]
    fn operator_bodies_must_be_a_type_no_form_can_send() {
        let refused = |method: &str, headers: &[(&str, &str)]| {
            operator_body(&req(method, "/api/backoffice/resyncs", headers)).is_some()
        };
        for ct in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            assert!(
                refused("POST", &[("content-type", ct), ("content-length", "17")]),
                "{ct}"
            );
        }
        assert!(refused("POST", &[("content-length", "17")]));
        assert!(refused("PUT", &[("transfer-encoding", "chunked")]));
        for ct in [
            "application/json",
            "text/csv",
            "application/json; charset=utf-8",
        ] {
            assert!(
                !refused("POST", &[("content-type", ct), ("content-length", "17")]),
                "{ct}"
            );
        }
        // No body: nothing to type; a read is never a change.
        assert!(!refused("POST", &[("content-length", "0")]));
        assert!(!refused("POST", &[]));
        assert!(!refused(
            "GET",
            &[("content-type", "text/plain"), ("content-length", "3")]
        ));
    }

    #[test]
    fn every_answer_gets_the_protections_and_a_console_csp_is_kept() {
        let mut h = HeaderMap::new();
        protect(&mut h);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], API_CSP);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        protect(&mut h);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "default-src 'self'");
    }
}

//! The subscription endpoint (`/rk7api/v1/subscribe.xml?service=httpnotf`,
//! r_keeper 7.6.5.440 and later): which URLs the cash server posts its
//! notify events to. GET lists, POST adds, DELETE removes one `url`.
//!
//! The listing's format is not documented, so it is read for what it must
//! contain: every `http://` or `https://` address in it, wherever it is
//! (attribute, text, a `;`-separated list), and the raw body is kept so a
//! person can see what the server really said. Only a 2xx listing is kept
//! (never an error page, never a redirect's target: see [`Client`]).

use reqwest::Method;

use super::answer::read_query_result;
use super::client::Client;
use super::error::Error;

/// The subscription endpoint's path on the cash server.
pub const SUBSCRIBE_PATH: &str = "/rk7api/v1/subscribe.xml";

/// The notify service subscriptions are for.
const SERVICE: &str = "httpnotf";

/// The first version with the subscription endpoint; older cash servers
/// use the notify driver and its `DestURLs` setting.
pub const SUBSCRIPTIONS_SINCE: [u64; 4] = [7, 6, 5, 440];

/// Whether a cash server of this `ServerVersion` has the subscription
/// endpoint (unreadable parts of the version count as 0).
pub fn supports_subscriptions(server_version: &str) -> bool {
    let mut v = [0u64; 4];
    for (slot, p) in v.iter_mut().zip(server_version.trim().split('.')) {
        *slot = p.trim().parse().unwrap_or(0);
    }
    v >= SUBSCRIPTIONS_SINCE
}

/// What the listing said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscriptions {
    /// Every destination address found in the answer, in order, once each.
    pub urls: Vec<String>,
    /// The answer as sent (lossy UTF-8), for a person to read.
    pub raw: String,
}

/// Every `http(s)://` address in a listing answer.
pub fn read_subscriptions(body: &[u8]) -> Subscriptions {
    let raw = String::from_utf8_lossy(body).into_owned();
    // Entities first, so `&amp;` inside a query is not cut at its `;`.
    let text = raw
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let mut urls: Vec<String> = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut i = 0;
    while i < text.len() {
        let rest = &lower[i..];
        let Some(at) = ["http://", "https://"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
        else {
            break;
        };
        let start = i + at;
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ';' | ','))
            .map_or(text.len(), |e| start + e);
        let url = text[start..end].trim_end_matches(['.', ')']).to_string();
        if !urls.contains(&url) {
            urls.push(url);
        }
        i = end.max(start + 1);
    }
    Subscriptions { urls, raw }
}

impl Client {
    /// GET: the destinations the cash server posts to.
    pub async fn list_subscriptions(&self) -> Result<Subscriptions, Error> {
        let (status, body) = self.subscription(Method::GET, None).await?;
        check(status, &body)?;
        Ok(read_subscriptions(&body))
    }

    /// POST: adds `destination`.
    pub async fn subscribe(&self, destination: &str) -> Result<(), Error> {
        let (status, body) = self.subscription(Method::POST, Some(destination)).await?;
        check(status, &body)
    }

    /// DELETE: removes `destination`.
    pub async fn unsubscribe(&self, destination: &str) -> Result<(), Error> {
        let (status, body) = self.subscription(Method::DELETE, Some(destination)).await?;
        check(status, &body)
    }

    async fn subscription(
        &self,
        method: Method,
        destination: Option<&str>,
    ) -> Result<(u16, Vec<u8>), Error> {
        let mut url = self.base().clone();
        let path = format!("{}{SUBSCRIBE_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("service", SERVICE);
            if let Some(d) = destination {
                q.append_pair("url", d);
            }
        }
        self.exchange(self.request(method, url)).await
    }
}

/// A refusal in the answer (an `<RK7QueryResult>` with a failing Status),
/// or an HTTP error status, is an error; anything else 2xx is success. An
/// error status is reported without the body, which is not r_keeper's.
fn check(status: u16, body: &[u8]) -> Result<(), Error> {
    let looks_like_result =
        String::from_utf8_lossy(&body[..body.len().min(512)]).contains("RK7QueryResult");
    if looks_like_result {
        match read_query_result(body) {
            Err(e @ Error::Status(_)) => return Err(e),
            Ok(_) if (200..300).contains(&status) => return Ok(()),
            _ => {}
        }
    }
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Error::Http { status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_read_for_its_addresses_whatever_the_shape() {
        let xml = br#"<RK7QueryResult Status="Ok"><Subscriptions>
            <Subscription service="httpnotf" url="http://10.0.0.2:11130/rkevent?key=a&amp;b=1"/>
            <Subscription url='https://old.example/api/v1/events'/></Subscriptions></RK7QueryResult>"#;
        let s = read_subscriptions(xml);
        assert_eq!(
            s.urls,
            [
                "http://10.0.0.2:11130/rkevent?key=a&b=1",
                "https://old.example/api/v1/events"
            ]
        );
        let s = read_subscriptions(b"http://a:1/x;http://b:2/y http://a:1/x");
        assert_eq!(s.urls, ["http://a:1/x", "http://b:2/y"]);
        assert!(read_subscriptions(b"").urls.is_empty());
        assert!(read_subscriptions(b"nothing here").urls.is_empty());
    }

    #[test]
    fn subscriptions_exist_from_7_6_5_440() {
        assert!(supports_subscriptions("7.6.5.440"));
        assert!(supports_subscriptions("7.7.0.1"));
        assert!(!supports_subscriptions("7.6.5.92"));
        assert!(!supports_subscriptions("7.5.9.999"));
        assert!(!supports_subscriptions(""));
    }

    #[test]
    fn a_refusal_in_the_body_is_an_error_even_with_200() {
        let body = br#"<RK7QueryResult Status="Query Executing Error" ErrorText="no right"/>"#;
        assert!(matches!(check(200, body), Err(Error::Status(_))));
        assert!(check(200, b"").is_ok());
        assert!(matches!(
            check(401, b"Unauthorized"),
            Err(Error::Http { status: 401, .. })
        ));
    }
}

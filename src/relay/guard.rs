//! The SSRF guard: which addresses a destination may reach, checked when a
//! destination is accepted and again by the delivery client's resolver at
//! every connection.
//!
//! Off the switch (`[relay] allow_private_destinations`), loopback, private,
//! link-local and other non-public addresses are refused, so an API caller
//! cannot make tillgate post into the network it sits in. The check at
//! acceptance gives the operator a clear answer; the resolver's check is the
//! one that holds, because a name can be re-pointed after it was checked.

use std::net::IpAddr;

use reqwest::Url;

use super::destination::{DestinationError, redact_url};

/// What kind of non-public address `ip` is, if it is one.
pub fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_private() {
                Some("private")
            } else if a.is_link_local() {
                Some("link-local")
            } else if o[0] == 100 && (o[1] & 0xC0) == 64 {
                Some("shared (CGNAT)")
            } else if a.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if a.is_broadcast() || a.is_multicast() {
                Some("broadcast/multicast")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return private_kind(IpAddr::V4(v4));
            }
            let s0 = a.segments()[0];
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_unspecified() {
                Some("unspecified")
            } else if (s0 & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if (s0 & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if a.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn check_ip(url: &Url, ip: IpAddr, allow_private: bool) -> Result<(), DestinationError> {
    match private_kind(ip) {
        Some(what) if !allow_private => Err(DestinationError::Private {
            url: redact_url(url),
            what,
            ip,
        }),
        _ => Ok(()),
    }
}

/// The checks that need no DNS: literal addresses and `localhost`.
pub fn check_literal(url: &Url, allow_private: bool) -> Result<(), DestinationError> {
    match url.host() {
        None => Err(DestinationError::BadUrl {
            url: redact_url(url),
            problem: "no host".into(),
        }),
        Some(url::Host::Ipv4(a)) => check_ip(url, IpAddr::V4(a), allow_private),
        Some(url::Host::Ipv6(a)) => check_ip(url, IpAddr::V6(a), allow_private),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                check_ip(url, IpAddr::from([127, 0, 0, 1]), allow_private)
            } else {
                Ok(())
            }
        }
    }
}

/// Resolves the host and checks every address it resolves to.
pub async fn check_resolved(url: &Url, allow_private: bool) -> Result<(), DestinationError> {
    check_literal(url, allow_private)?;
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        DestinationError::Unresolvable {
            url: redact_url(url),
            problem: e.to_string(),
        }
    })?;
    let mut any = false;
    for a in addrs {
        any = true;
        check_ip(url, a.ip(), allow_private)?;
    }
    if !any {
        return Err(DestinationError::Unresolvable {
            url: redact_url(url),
            problem: "no addresses".into(),
        });
    }
    Ok(())
}

/// DNS for the delivery client: drops non-public addresses unless allowed,
/// so a name that is re-pointed at an internal address after it was checked
/// (DNS rebinding) still cannot reach inside.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<std::net::SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allow || private_kind(a.ip()).is_none())
                .collect();
            if kept.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves only to loopback/private/link-local addresses ({addrs:?}); set `[relay] allow_private_destinations = true` to allow them"
                )
                .into();
                return Err(e);
            }
            let it: reqwest::dns::Addrs = Box::new(kept.into_iter());
            Ok(it)
        })
    }
}

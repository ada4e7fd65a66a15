//! The SSRF guard: which addresses a destination may reach, checked when a
//! destination is accepted and again by the delivery client's resolver at
//! every connection.
//!
//! Off the switch (`[relay] allow_private_destinations`), loopback, private,
//! link-local and other non-public addresses are refused, so an API caller
//! cannot make tillgate post into the network it sits in. The check at
//! acceptance gives the operator a clear answer; the resolver's check is the
//! one that holds, because a name can be re-pointed after it was checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

use super::destination::{DestinationError, redact_url};

/// What kind of non-public address `ip` is, if it is one.
///
/// An IPv6 address that carries an IPv4 one (mapped `::ffff:a.b.c.d`,
/// translated `::ffff:0:a.b.c.d`, the old compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) is judged by that IPv4
/// address: the host's stack, a NAT64 gateway or a 6to4 relay delivers it
/// there, so `[::127.0.0.1]` is loopback as much as `127.0.0.1` is. Where
/// the IPv4 address cannot be read reliably (local-use NAT64
/// `64:ff9b:1::/48`, whose prefix length is the network's choice; Teredo
/// `2001::/32`, a tunnel no destination needs), the whole range is refused.
pub fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => v4_kind(a),
        IpAddr::V6(a) => {
            if a.is_loopback() {
                return Some("loopback");
            }
            if a.is_unspecified() {
                return Some("unspecified");
            }
            if let Some(v4) = embedded_v4(a) {
                return v4_kind(v4);
            }
            v6_kind(a)
        }
    }
}

fn v4_kind(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    let within = |net: [u8; 4], bits: u32| {
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        u32::from(a) & mask == u32::from(Ipv4Addr::from(net)) & mask
    };
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_private() {
        Some("private")
    } else if a.is_link_local() {
        Some("link-local")
    } else if within([100, 64, 0, 0], 10) {
        Some("shared (CGNAT)")
    } else if a.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if a.is_broadcast() || a.is_multicast() {
        Some("broadcast/multicast")
    } else if within([198, 18, 0, 0], 15) {
        Some("benchmarking (198.18.0.0/15)")
    } else if within([240, 0, 0, 0], 4) {
        Some("reserved (240.0.0.0/4)")
    } else if within([192, 0, 0, 0], 24) {
        Some("reserved (IETF protocol assignments, 192.0.0.0/24)")
    } else if within([192, 88, 99, 0], 24) {
        Some("reserved (6to4 relay anycast)")
    } else if within([192, 0, 2, 0], 24)
        || within([198, 51, 100, 0], 24)
        || within([203, 0, 113, 0], 24)
    {
        Some("documentation")
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address delivers to, in the forms where it
/// sits at a fixed place.
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let last = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last),
        // ::ffff:0:a.b.c.d (SIIT translated)
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last),
        // ::a.b.c.d (compatible; `::` and `::1` were taken out before)
        [0, 0, 0, 0, 0, 0, _, _] => Some(last),
        // 64:ff9b::a.b.c.d (NAT64, well-known prefix)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn v6_kind(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if (s[0] & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Some("site-local")
    } else if a.is_multicast() {
        Some("multicast")
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        Some("NAT64 (local-use or not the well-known 64:ff9b::/96)")
    } else if s[0] == 0x2001 && s[1] == 0 {
        Some("Teredo tunnel (2001::/32)")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation")
    } else if s[..4] == [0x100, 0, 0, 0] {
        Some("discard-only (100::/64)")
    } else {
        None
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
                    "{host} resolves only to non-public (loopback, private, link-local, reserved) addresses ({addrs:?}); set `[relay] allow_private_destinations = true` to allow them"
                )
                .into();
                return Err(e);
            }
            let it: reqwest::dns::Addrs = Box::new(kept.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> Option<&'static str> {
        private_kind(ip.parse().unwrap())
    }

    /// Every spelling of an inside address is refused, the IPv4 one inside
    /// an IPv6 address judged as itself.
    #[test]
    fn an_ipv4_address_inside_ipv6_is_judged_as_itself() {
        for (ip, want) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::127.0.0.1", "loopback"),
            ("::ffff:0:127.0.0.1", "loopback"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::10.0.0.5", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
            ("2002:c612:1::", "benchmarking (198.18.0.0/15)"),
            ("::169.254.169.254", "link-local"),
        ] {
            assert_eq!(kind(ip), Some(want), "{ip}");
        }
        // A public IPv4 address inside stays public.
        for ip in ["64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:8.8.8.8"] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn reserved_ranges_are_refused() {
        for ip in [
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "255.255.255.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
            "64:ff9b:1::7f00:1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fec0::1",
            "100::1",
            "::",
            "::1",
        ] {
            assert!(kind(ip).is_some(), "{ip}");
        }
        for ip in [
            "198.17.255.255",
            "198.20.0.1",
            "93.184.216.34",
            "2a00:1450::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    /// The resolver drops such addresses whatever the DNS answered (here
    /// the names are the literal answers).
    #[tokio::test]
    async fn the_resolver_drops_every_spelling() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let guarded = GuardedResolver {
            allow_private: false,
        };
        for host in [
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "198.18.0.1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            let name = reqwest::dns::Name::from_str(host).unwrap();
            let e = guarded.resolve(name).await.err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("non-public")),
                "{host}: {e:?}"
            );
        }
        let open = GuardedResolver {
            allow_private: true,
        };
        let name = reqwest::dns::Name::from_str("::127.0.0.1").unwrap();
        assert!(open.resolve(name).await.is_ok());
    }
}

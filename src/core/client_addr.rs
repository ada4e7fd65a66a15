//! Who is on the other end of a request: the peer's address, or, when the
//! peer is a proxy the operator trusts (`[http] trusted_proxies`), the
//! client that proxy names in `X-Forwarded-For`.
//!
//! Anyone can write `X-Forwarded-For`, so the header is believed only from
//! a trusted peer, and read from the right: the last address a trusted
//! proxy did not add is the client. Limits keyed by address (sign-in
//! failures) use this, so that behind nginx one person's typos do not lock
//! out everyone, and a client cannot pick its own key by sending the
//! header directly.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address for `peer`'s request with `headers`.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| in_any(trusted, *ip);
    let peer_ip = canonical(peer.ip());
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    // Every X-Forwarded-For header, in order, as one list.
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    let mut client = peer_ip;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// An address or a network as an operator writes one in the config or an
/// API (`10.0.0.5`, `10.0.0.0/8`, `::1`).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether `ip` (an IPv4 one also as `::ffff:a.b.c.d`) is in one of `nets`.
pub fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is the IPv4 one.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let direct: SocketAddr = "203.0.113.5:4000".parse().unwrap();
        // A client writing the header itself picks nothing.
        assert_eq!(
            client_ip(direct, &headers(&["198.51.100.1"]), &trusted),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        let proxy: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &headers(&["198.51.100.1"]), &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        // A forged first hop is skipped: the right-most untrusted one wins.
        assert_eq!(
            client_ip(
                proxy,
                &headers(&["1.2.3.4, 198.51.100.1, 10.0.0.9"]),
                &trusted
            ),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(proxy, &headers(&["1.2.3.4", "198.51.100.1"]), &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        // Garbage or no header: the proxy itself.
        assert_eq!(
            client_ip(proxy, &headers(&["not-an-ip"]), &trusted),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        // Nothing trusted: never the header.
        assert_eq!(
            client_ip(proxy, &headers(&["198.51.100.1"]), &[]),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        let mapped: SocketAddr = "[::ffff:10.0.0.2]:1".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &headers(&["198.51.100.1"]), &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }
}

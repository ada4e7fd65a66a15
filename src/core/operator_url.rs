//! Where a subcommand reaches the running server's operator API: the
//! `--server` URL given, or the configured `listen` address (a wildcard
//! address becomes loopback, which is where the server also listens).

use super::config::Config;

/// The base URL (`http://host:port`, no trailing slash).
pub fn operator_base(config: &Config, server: Option<&str>) -> String {
    match server {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => {
            let mut addr = config.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
            }
            format!("http://{addr}")
        }
    }
}

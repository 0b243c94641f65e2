//! The `[tls]` section: HTTPS on the shop's network with the box's own certificate authority
//! (see `crate::tls`). HTTPS is served beside HTTP, never instead of it: the widget on an http
//! shop site, `/healthz` and the CA download stay on plain HTTP.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// Serve HTTPS (on by default): the console is a secure context only over HTTPS, so
    /// notifications, the clipboard and installing it on a phone need it.
    pub enabled: bool,
    /// Where HTTPS listens.
    pub listen: SocketAddr,
    /// Redirect plain-HTTP requests for the console to HTTPS. Everything customers and
    /// machines use (`/chat`, `/widget.js`, the APIs, WebSockets, `/healthz`, the CA
    /// download and the trust page) keeps answering over HTTP.
    pub redirect_http: bool,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            redirect_http: false,
        }
    }
}

impl Tls {
    /// Problems with the section, each naming its key; none while it is off.
    pub(super) fn problems(&self, http: SocketAddr) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if !self.enabled {
            return errors;
        }
        let overlaps = |a: std::net::IpAddr, b: std::net::IpAddr| {
            a == b || a.is_unspecified() || b.is_unspecified()
        };
        if self.listen.port() != 0
            && self.listen.port() == http.port()
            && overlaps(self.listen.ip(), http.ip())
        {
            errors.push(ConfigError {
                key: "tls.listen",
                message: format!(
                    "must not be server.listen's address ({http}): HTTPS needs a port of its own"
                ),
            });
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_needs_a_port_of_its_own() {
        let http: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let mut tls = Tls::default();
        assert!(tls.problems(http).is_empty());
        tls.listen = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(tls.problems(http)[0].key, "tls.listen");
        tls.listen = "127.0.0.1:0".parse().unwrap();
        assert!(tls.problems("127.0.0.1:0".parse().unwrap()).is_empty());
        tls.listen = "127.0.0.1:8080".parse().unwrap();
        assert!(tls.problems("127.0.0.2:8080".parse().unwrap()).is_empty());
        tls.enabled = false;
        tls.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(tls.problems(http).is_empty());
    }

    #[test]
    fn a_reload_applies_the_redirect_and_names_the_listener() {
        let running = crate::config::Config::default();
        let edited = crate::config::Config::parse(
            "[tls]\nlisten = \"127.0.0.1:9443\"\nredirect_http = true\n",
        )
        .unwrap();
        let (applied, needs_restart) = edited.reloadable_from(&running);
        assert_eq!(needs_restart, ["tls"]);
        assert_eq!(applied.tls.listen, running.tls.listen);
        assert!(applied.tls.redirect_http);
    }
}

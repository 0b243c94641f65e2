//! Which names the box's server certificate must carry: pure, from the host name and the
//! interface addresses `host.rs` reads.
//!
//! Always `kefu.local`, `localhost`, 127.0.0.1 and ::1; the host name (lowercased) and, for a
//! single-label one, `NAME.local` (what mDNS answers to); every interface address except
//! IPv6 link-local ones (a browser cannot open a URL with their zone) and unspecified or
//! multicast ones. A host name that is not a valid DNS name is left out, never mangled.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The name every box answers to on a shop's network (the SD image publishes it over mDNS).
pub const SHOP_NAME: &str = "kefu.local";

/// A certificate's subject alternative names, sorted (so two sets compare and print alike).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

impl Names {
    /// The names in `self` that `cert` lacks, as text (DNS names first).
    pub fn missing_from(&self, cert: &Names) -> Vec<String> {
        let dns = self.dns.difference(&cert.dns).cloned();
        let ips = self.ips.difference(&cert.ips).map(IpAddr::to_string);
        dns.chain(ips).collect()
    }

    /// Every name as text, DNS names first.
    pub fn all(&self) -> Vec<String> {
        self.dns
            .iter()
            .cloned()
            .chain(self.ips.iter().map(IpAddr::to_string))
            .collect()
    }
}

/// The names a certificate for this box must carry, given its host name and addresses.
pub fn wanted(hostname: Option<&str>, addrs: &[IpAddr]) -> Names {
    let mut names = Names::default();
    names.dns.insert(SHOP_NAME.into());
    names.dns.insert("localhost".into());
    if let Some(host) = hostname.map(|h| h.trim_end_matches('.').to_ascii_lowercase()) {
        if dns_name(&host) {
            if !host.contains('.') {
                names.dns.insert(format!("{host}.local"));
            }
            names.dns.insert(host);
        }
    }
    names.ips.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
    names.ips.insert(IpAddr::V6(Ipv6Addr::LOCALHOST));
    names
        .ips
        .extend(addrs.iter().copied().filter(|ip| reachable(*ip)));
    names
}

/// Whether a browser could open `https://ADDR/`: not unspecified, multicast or IPv6
/// link-local (fe80::/10, which needs a zone).
fn reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !v6.is_unspecified() && !v6.is_multicast() && !link_local
        }
    }
}

/// A DNS name a certificate can carry: labels of 1-63 letters, digits and hyphens (not at
/// either end), 253 characters at most, not all digits (that would be an address).
fn dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.chars().all(|c| c.is_ascii_digit() || c == '.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn the_box_is_named_by_its_host_name_kefu_local_and_its_addresses() {
        let n = wanted(
            Some("Kefu-Pi"),
            &ips(&[
                "192.168.1.23",
                "127.0.0.1",
                "fe80::1",
                "2001:db8::5",
                "0.0.0.0",
            ]),
        );
        assert_eq!(
            n.all(),
            [
                "kefu-pi",
                "kefu-pi.local",
                "kefu.local",
                "localhost",
                "127.0.0.1",
                "192.168.1.23",
                "::1",
                "2001:db8::5"
            ]
        );
    }

    #[test]
    fn a_qualified_host_name_is_kept_as_is_and_a_bad_one_left_out() {
        let n = wanted(Some("till.shop.lan."), &[]);
        assert!(n.dns.contains("till.shop.lan"));
        assert!(!n.dns.contains("till.shop.lan.local"));
        for bad in ["under_score", "-x", "a..b", "1234", ""] {
            let n = wanted(Some(bad), &[]);
            assert_eq!(
                n.dns.iter().map(String::as_str).collect::<Vec<_>>(),
                ["kefu.local", "localhost"],
                "{bad}"
            );
        }
        // Loopback is always there, with or without interfaces.
        assert_eq!(wanted(None, &[]).ips.len(), 2);
    }

    #[test]
    fn missing_names_are_the_wanted_ones_a_certificate_lacks() {
        let cert = wanted(Some("pi"), &ips(&["10.0.0.2", "10.0.0.3"]));
        // An address gone is no reason to renew; one new is.
        assert!(wanted(Some("pi"), &ips(&["10.0.0.2"]))
            .missing_from(&cert)
            .is_empty());
        assert_eq!(
            wanted(Some("till"), &ips(&["10.0.0.9"])).missing_from(&cert),
            ["till", "till.local", "10.0.0.9"]
        );
    }
}

//! When to make a new certificate: pure decisions over what is on disk (as `state.json`
//! records it), the names the box wants now and the time.
//!
//! - No CA, or one within [`RENEW_BEFORE`] of its end: a new CA and a new server certificate
//!   (every device must trust the new CA again, so this is logged loudly; with the CA's fixed
//!   validity it happens in 2049).
//! - No server certificate, one issued by another CA, one not yet valid (the clock was ahead
//!   when it was made), one within [`RENEW_BEFORE`] of its end, or one lacking a name the
//!   box has now: a new server certificate. Names the box no longer has are no reason (an
//!   address that comes and goes would otherwise renew at every check); a renewal drops them.

use super::names::Names;

/// A certificate is renewed when less than this remains (seconds): 30 days.
pub const RENEW_BEFORE: i64 = 30 * 86_400;

/// What `state.json` says of the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFacts {
    pub not_after: i64,
    /// SHA-256 of the CA certificate's DER, hex.
    pub sha256: String,
}

/// What `state.json` says of the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub names: Names,
    pub not_before: i64,
    pub not_after: i64,
    /// The CA that signed it (its certificate's SHA-256).
    pub ca_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// A new server certificate from the CA there is.
    NewServer(Reason),
    /// A new CA, and a server certificate from it.
    NewCa(Reason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    NoCa,
    CaEnding,
    NoServer,
    OtherCa,
    NotYetValid,
    Ending { days_left: i64 },
    NewNames(Vec<String>),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::NoCa => f.write_str("no certificate authority yet"),
            Reason::CaEnding => f.write_str("the certificate authority is about to expire"),
            Reason::NoServer => f.write_str("no server certificate yet"),
            Reason::OtherCa => f.write_str("the server certificate is from another CA"),
            Reason::NotYetValid => {
                f.write_str("the server certificate starts in the future (the clock was ahead)")
            }
            Reason::Ending { days_left } => {
                write!(f, "the server certificate expires in {days_left} days")
            }
            Reason::NewNames(names) => write!(f, "new names: {}", names.join(", ")),
        }
    }
}

/// What to do, at `now` (Unix seconds), with the CA and server certificate described.
pub fn decide(
    ca: Option<&CaFacts>,
    server: Option<&ServerFacts>,
    wanted: &Names,
    now: i64,
) -> Decision {
    let Some(ca) = ca else {
        return Decision::NewCa(Reason::NoCa);
    };
    if ca.not_after - now < RENEW_BEFORE {
        return Decision::NewCa(Reason::CaEnding);
    }
    let Some(server) = server else {
        return Decision::NewServer(Reason::NoServer);
    };
    if server.ca_sha256 != ca.sha256 {
        return Decision::NewServer(Reason::OtherCa);
    }
    if server.not_before > now {
        return Decision::NewServer(Reason::NotYetValid);
    }
    let left = server.not_after - now;
    if left < RENEW_BEFORE {
        return Decision::NewServer(Reason::Ending {
            days_left: left.div_euclid(86_400),
        });
    }
    let missing = wanted.missing_from(&server.names);
    if !missing.is_empty() {
        return Decision::NewServer(Reason::NewNames(missing));
    }
    Decision::Keep
}

#[cfg(test)]
mod tests {
    use super::super::names::wanted;
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    fn ca() -> CaFacts {
        CaFacts {
            not_after: NOW + 20 * 365 * DAY,
            sha256: "aa".into(),
        }
    }

    fn server(names: Names, not_before: i64, not_after: i64) -> ServerFacts {
        ServerFacts {
            names,
            not_before,
            not_after,
            ca_sha256: "aa".into(),
        }
    }

    #[test]
    fn a_first_start_makes_everything() {
        let w = wanted(Some("pi"), &[]);
        assert_eq!(decide(None, None, &w, NOW), Decision::NewCa(Reason::NoCa));
        assert_eq!(
            decide(Some(&ca()), None, &w, NOW),
            Decision::NewServer(Reason::NoServer)
        );
    }

    #[test]
    fn a_fresh_certificate_with_every_name_is_kept() {
        let w = wanted(Some("pi"), &["192.168.1.2".parse().unwrap()]);
        let s = server(w.clone(), NOW - DAY, NOW + 396 * DAY);
        assert_eq!(decide(Some(&ca()), Some(&s), &w, NOW), Decision::Keep);
        // Until 30 days before its end...
        assert_eq!(
            decide(Some(&ca()), Some(&s), &w, NOW + 366 * DAY),
            Decision::Keep
        );
        // ...then renewed.
        assert_eq!(
            decide(Some(&ca()), Some(&s), &w, NOW + 367 * DAY),
            Decision::NewServer(Reason::Ending { days_left: 29 })
        );
        // Expired already (the box was off for a year, or its clock was behind).
        assert_eq!(
            decide(Some(&ca()), Some(&s), &w, NOW + 500 * DAY),
            Decision::NewServer(Reason::Ending { days_left: -104 })
        );
    }

    #[test]
    fn a_new_address_or_host_name_renews_and_a_lost_one_does_not() {
        let old = wanted(Some("pi"), &["192.168.1.2".parse().unwrap()]);
        let s = server(old, NOW - DAY, NOW + 396 * DAY);
        let moved = wanted(Some("pi"), &["192.168.7.9".parse().unwrap()]);
        assert_eq!(
            decide(Some(&ca()), Some(&s), &moved, NOW),
            Decision::NewServer(Reason::NewNames(vec!["192.168.7.9".into()]))
        );
        let renamed = wanted(Some("till"), &["192.168.1.2".parse().unwrap()]);
        assert_eq!(
            decide(Some(&ca()), Some(&s), &renamed, NOW),
            Decision::NewServer(Reason::NewNames(vec!["till".into(), "till.local".into()]))
        );
        let unplugged = wanted(Some("pi"), &[]);
        assert_eq!(
            decide(Some(&ca()), Some(&s), &unplugged, NOW),
            Decision::Keep
        );
    }

    #[test]
    fn another_ca_a_future_start_or_an_ending_ca_renew() {
        let w = wanted(None, &[]);
        let mut s = server(w.clone(), NOW - DAY, NOW + 396 * DAY);
        s.ca_sha256 = "bb".into();
        assert_eq!(
            decide(Some(&ca()), Some(&s), &w, NOW),
            Decision::NewServer(Reason::OtherCa)
        );
        let s = server(w.clone(), NOW + DAY, NOW + 396 * DAY);
        assert_eq!(
            decide(Some(&ca()), Some(&s), &w, NOW),
            Decision::NewServer(Reason::NotYetValid)
        );
        let ending = CaFacts {
            not_after: NOW + 29 * DAY,
            ..ca()
        };
        assert_eq!(
            decide(Some(&ending), Some(&s), &w, NOW),
            Decision::NewCa(Reason::CaEnding)
        );
    }
}

//! Making the certificates (rcgen, ECDSA P-256): the box's certificate authority and a server
//! certificate it signs. No I/O but the randomness of keys and serial numbers.
//!
//! Invariants:
//! - The CA's validity is fixed ([`CA_NOT_BEFORE`]..[`CA_NOT_AFTER`]), not taken from the clock:
//!   a board without a real-time clock may make its CA before NTP has set the time, and a CA
//!   that every device trusts must not be made again for that.
//! - A server certificate is valid from a day before `now` (clients whose clocks lag) for
//!   [`SERVER_DAYS`] days in all, the most browsers accept; it names every name it is asked
//!   for, as DNS or IP subject alternative names, and is for server authentication only.
//! - Signing needs only the CA's key and its distinguished name (kept in `state.json`): the
//!   issuer name and key identifier of a server certificate are derived from them exactly as
//!   when the CA was made.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::Digest;

use super::names::Names;
use super::renew::{CaFacts, ServerFacts};
use super::TlsError;

/// 2024-01-01T00:00:00Z.
pub const CA_NOT_BEFORE: i64 = 1_704_067_200;
/// 2049-12-31T23:59:59Z, the last instant X.509's UTCTime can say.
pub const CA_NOT_AFTER: i64 = 2_524_607_999;
/// A server certificate's whole validity, in days (browsers refuse longer ones).
pub const SERVER_DAYS: i64 = 397;

/// The certificate authority: its key signs server certificates.
pub struct Ca {
    pub common_name: String,
    pub key: KeyPair,
    pub cert_der: Vec<u8>,
    pub facts: CaFacts,
}

/// A server certificate and its key.
pub struct Server {
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    pub cert_der: Vec<u8>,
    pub facts: ServerFacts,
}

/// The CA's name as devices list it: `kefud HOST local CA`.
pub fn ca_name(hostname: Option<&str>) -> String {
    let host: String = hostname
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(40)
        .collect();
    if host.is_empty() {
        "kefud local CA".into()
    } else {
        format!("kefud {host} local CA")
    }
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ca_params(common_name: &str) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "kefud");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = time_at(CA_NOT_BEFORE)?;
    p.not_after = time_at(CA_NOT_AFTER)?;
    p.serial_number = Some(serial()?);
    Ok(p)
}

fn time_at(unix: i64) -> Result<time::OffsetDateTime, TlsError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| TlsError::Generate(format!("time {unix} out of range")))
}

fn serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| TlsError::Generate(e.to_string()))?;
    // Positive and non-zero, as RFC 5280 asks.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn generate(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A new certificate authority named `common_name`.
///
/// # Errors
/// [`TlsError::Generate`] if no key can be made (no randomness) or rcgen refuses a field.
pub fn new_ca(common_name: &str) -> Result<Ca, TlsError> {
    let key = KeyPair::generate().map_err(generate)?;
    let cert = ca_params(common_name)?
        .self_signed(&key)
        .map_err(generate)?;
    let cert_der = cert.der().to_vec();
    Ok(Ca {
        common_name: common_name.into(),
        facts: CaFacts {
            not_after: CA_NOT_AFTER,
            sha256: sha256_hex(&cert_der),
        },
        key,
        cert_der,
    })
}

/// A server certificate for `names` signed by `ca`, valid from a day before `now` (Unix
/// seconds) for [`SERVER_DAYS`] days.
///
/// # Errors
/// [`TlsError::Generate`] if no key can be made or a name cannot be encoded.
pub fn new_server(ca: &Ca, names: &Names, now: i64) -> Result<Server, TlsError> {
    let key = KeyPair::generate().map_err(generate)?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names
            .dns
            .first()
            .cloned()
            .unwrap_or_else(|| super::names::SHOP_NAME.into()),
    );
    p.distinguished_name = dn;
    for name in &names.dns {
        let ia5 = name.clone().try_into().map_err(generate)?;
        p.subject_alt_names.push(SanType::DnsName(ia5));
    }
    p.subject_alt_names
        .extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let not_before = now - 86_400;
    let not_after = not_before + SERVER_DAYS * 86_400;
    p.not_before = time_at(not_before)?;
    p.not_after = time_at(not_after)?;
    p.serial_number = Some(serial()?);
    let issuer = Issuer::new(ca_params(&ca.common_name)?, &ca.key);
    let cert = p.signed_by(&key, &issuer).map_err(generate)?;
    Ok(Server {
        key_der: key.serialized_der().to_vec(),
        cert_der: cert.der().to_vec(),
        facts: ServerFacts {
            names: names.clone(),
            not_before,
            not_after,
            ca_sha256: ca.facts.sha256.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::super::names::wanted;
    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// A verifier that trusts `ca` alone, as a device that installed it does.
    fn verifier(ca: &Ca) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.cert_der.clone()))
            .unwrap();
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn verify(ca: &Ca, server: &Server, name: &str, at: i64) -> Result<(), rustls::Error> {
        let der = CertificateDer::from(server.cert_der.clone());
        verifier(ca)
            .verify_server_cert(
                &der,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(at as u64)),
            )
            .map(|_| ())
    }

    #[test]
    fn the_server_certificate_chains_to_the_ca_for_every_name() {
        let ca = new_ca(&ca_name(Some("kefu-pi"))).unwrap();
        let names = wanted(
            Some("kefu-pi"),
            &[
                "192.168.1.23".parse().unwrap(),
                "2001:db8::7".parse().unwrap(),
            ],
        );
        let server = new_server(&ca, &names, NOW).unwrap();
        for name in names.all() {
            verify(&ca, &server, &name, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // A name it was not made for is refused...
        assert!(verify(&ca, &server, "shop.example", NOW).is_err());
        assert!(verify(&ca, &server, "192.168.1.24", NOW).is_err());
        // ...as is the certificate after its end or under another CA.
        assert!(verify(&ca, &server, "kefu.local", NOW + 400 * 86_400).is_err());
        assert!(verify(&ca, &server, "kefu.local", NOW + 395 * 86_400).is_ok());
        let other = new_ca("other").unwrap();
        assert!(verify(&other, &server, "kefu.local", NOW).is_err());
        assert_eq!(
            server.facts.not_after - server.facts.not_before,
            397 * 86_400
        );
        assert_eq!(server.facts.ca_sha256, ca.facts.sha256);
    }

    #[test]
    fn a_ca_rebuilt_from_its_key_and_name_signs_as_the_original() {
        let ca = new_ca("kefud till local CA").unwrap();
        let reloaded = Ca {
            common_name: ca.common_name.clone(),
            key: KeyPair::try_from(ca.key.serialized_der()).unwrap(),
            cert_der: ca.cert_der.clone(),
            facts: ca.facts.clone(),
        };
        let server = new_server(&reloaded, &wanted(None, &[]), NOW).unwrap();
        verify(&ca, &server, "kefu.local", NOW).unwrap();
        verify(&ca, &server, "127.0.0.1", NOW).unwrap();
    }

    #[test]
    fn ca_names_and_fingerprints() {
        assert_eq!(ca_name(Some("kefu-pi")), "kefud kefu-pi local CA");
        assert_eq!(ca_name(Some("a b/c")), "kefud abc local CA");
        assert_eq!(ca_name(None), "kefud local CA");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

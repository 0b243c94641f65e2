//! HTTPS on the shop's network with no internet: the box is its own certificate authority.
//!
//! At the first start kefud makes a CA (`kefud HOST local CA`, valid to 2049) and a server
//! certificate it signs for the box's names (`names.rs`: its host name, `kefu.local`,
//! `localhost` and its addresses). Devices trust the CA once (the console's Admin, HTTPS page
//! and `/trust` explain how, per OS) and then every certificate the box makes for itself.
//!
//! Files: `names.rs` (which names, pure), `renew.rs` (when to make a new certificate, pure),
//! `issue.rs` (making them), `files.rs` (keeping them in `DATA_DIR/tls/`), `host.rs` (the
//! host name and addresses the OS reports).
//!
//! Invariants:
//! - The server certificate is checked at start and every [`CHECK_INTERVAL`]: a new one is
//!   made before the old one has 30 days left, and as soon as the box has a name or address
//!   it lacks. The new one is swapped into the running HTTPS listener ([`Resolver`]): no
//!   connection is dropped and nothing restarts.
//! - Certificate work (key generation, fsyncs) runs on the blocking pool, never on a runtime
//!   worker.
//! - Nothing here stops the daemon: HTTPS that cannot start (a damaged CA, a port taken) is
//!   logged, shown by `/api/v1/tls` and the console, and HTTP goes on.

pub mod files;
pub mod host;
pub mod issue;
pub mod names;
pub mod renew;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use renew::{Decision, Reason};

/// How often the names and the expiry are checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the box's certificate authority is damaged: {0}")]
    Damaged(String),
    #[error("the server certificate cannot be used: {0}")]
    Unusable(String),
    #[error("cannot listen for HTTPS on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the console, `/api/v1/tls` and the CA downloads show of the certificates in use.
#[derive(Debug, Clone)]
pub struct View {
    pub ca_name: String,
    pub ca_der: Arc<[u8]>,
    pub ca_sha256: String,
    pub ca_not_after: i64,
    /// The server certificate's names (DNS names first).
    pub names: Vec<String>,
    pub not_after: i64,
}

#[derive(Debug, Clone)]
pub enum Status {
    /// `tls.enabled = false`.
    Off,
    /// HTTPS could not start: why.
    Failed(String),
    Ready(View),
}

/// The certificate the HTTPS listener presents, swapped whole when a new one is made: a
/// handshake takes the one current when it starts.
#[derive(Debug, Default)]
pub struct Resolver(RwLock<Option<Arc<CertifiedKey>>>);

impl Resolver {
    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().expect("invariant: never poisoned") = Some(key);
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().expect("invariant: never poisoned").clone()
    }
}

/// HTTPS's state, shared by the listener, the renewal task and the handlers.
pub struct Service {
    data_dir: PathBuf,
    resolver: Arc<Resolver>,
    status: RwLock<Status>,
    /// Where HTTPS listens, once bound.
    https: OnceLock<SocketAddr>,
    /// Where HTTP listens (the CA download and the trust page are linked there).
    http: OnceLock<SocketAddr>,
}

/// The certificates as they are after a check.
struct Current {
    view: View,
    key: Arc<CertifiedKey>,
    renewed: Option<Reason>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// rustls's key for `server`; an error if the key does not match the certificate.
fn certified_key(server: &issue::Server) -> Result<CertifiedKey, TlsError> {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server.key_der.clone().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Unusable(e.to_string()))?;
    let key = CertifiedKey::new(vec![CertificateDer::from(server.cert_der.clone())], signer);
    key.keys_match()
        .map_err(|e| TlsError::Unusable(e.to_string()))?;
    Ok(key)
}

/// Loads the certificates in `data_dir`, makes what is missing or due and saves it: the one
/// place certificates change. Blocking.
fn ensure(data_dir: &Path) -> Result<Current, TlsError> {
    let stored = files::load(data_dir)?;
    let hostname = host::hostname();
    let addrs = host::addresses().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot list the network interfaces; the certificate names loopback only");
        Vec::new()
    });
    let wanted = names::wanted(hostname.as_deref(), &addrs);
    let now = now();
    // A server certificate whose key does not match it (a write cut between the two) is as
    // good as none.
    let server = stored
        .server
        .and_then(|s| certified_key(&s).ok().map(|key| (s, key)));
    let decision = renew::decide(
        stored.ca.as_ref().map(|ca| &ca.facts),
        server.as_ref().map(|(s, _)| &s.facts),
        &wanted,
        now,
    );
    let (ca, server, key, renewed) = match (decision, stored.ca, server) {
        (Decision::Keep, Some(ca), Some((server, key))) => (ca, server, key, None),
        (Decision::NewServer(reason), Some(ca), _) => {
            let server = issue::new_server(&ca, &wanted, now)?;
            let key = certified_key(&server)?;
            files::save(data_dir, &ca, false, &server)?;
            (ca, server, key, Some(reason))
        }
        (Decision::NewCa(reason), _, _) => {
            let ca = issue::new_ca(&issue::ca_name(hostname.as_deref()))?;
            let server = issue::new_server(&ca, &wanted, now)?;
            let key = certified_key(&server)?;
            files::save(data_dir, &ca, true, &server)?;
            (ca, server, key, Some(reason))
        }
        // `decide` keeps a certificate only when there are both, and renews the server's only
        // when there is a CA: never a reason to touch the CA.
        (decision, _, _) => {
            return Err(TlsError::Generate(format!(
                "inconsistent decision {decision:?} for what is on disk"
            )))
        }
    };
    Ok(Current {
        view: View {
            ca_name: ca.common_name.clone(),
            ca_der: Arc::from(ca.cert_der.as_slice()),
            ca_sha256: ca.facts.sha256.clone(),
            ca_not_after: ca.facts.not_after,
            names: server.facts.names.all(),
            not_after: server.facts.not_after,
        },
        key: Arc::new(key),
        renewed,
    })
}

impl Service {
    /// HTTPS as `cfg` asks: off, or the certificates loaded (made at the first start).
    /// A failure is logged and kept as the status; it never stops the daemon.
    pub async fn start(cfg: &crate::config::Config) -> Arc<Service> {
        let service = Arc::new(Service {
            data_dir: cfg.storage.data_dir.clone(),
            resolver: Arc::default(),
            status: RwLock::new(Status::Off),
            https: OnceLock::new(),
            http: OnceLock::new(),
        });
        if cfg.tls.enabled {
            service.check().await;
        }
        service
    }

    /// Checks the certificates now, making new ones if they are due, and swaps them in.
    async fn check(&self) {
        let data_dir = self.data_dir.clone();
        let result = tokio::task::spawn_blocking(move || ensure(&data_dir))
            .await
            .unwrap_or_else(|_| Err(TlsError::Generate("the certificate task panicked".into())));
        match result {
            Ok(current) => {
                if let Some(reason) = &current.renewed {
                    let ca_made = matches!(reason, Reason::NoCa | Reason::CaEnding);
                    tracing::info!(
                        %reason,
                        names = %current.view.names.join(", "),
                        ca = %current.view.ca_name,
                        "made a new HTTPS certificate{}",
                        if ca_made { " and certificate authority: devices must trust the new CA (console: Admin, HTTPS)" } else { "" }
                    );
                }
                self.resolver.set(current.key);
                *self.status.write().expect("invariant: never poisoned") =
                    Status::Ready(current.view);
            }
            Err(e) => {
                let serving = matches!(self.status(), Status::Ready(_));
                tracing::error!(error = %e, "HTTPS certificates: {}", if serving { "keeping the current certificate" } else { "HTTPS is off" });
                if !serving {
                    self.fail(e.to_string());
                }
            }
        }
    }

    /// Records why HTTPS is not served.
    pub fn fail(&self, why: String) {
        *self.status.write().expect("invariant: never poisoned") = Status::Failed(why);
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .expect("invariant: never poisoned")
            .clone()
    }

    /// The TLS settings of the HTTPS listener, once there is a certificate.
    pub fn server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        if !matches!(self.status(), Status::Ready(_)) {
            return None;
        }
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&self.resolver) as Arc<dyn ResolvesServerCert>);
        // The listener speaks HTTP/1.1 only (WebSocket upgrades included).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Some(Arc::new(config))
    }

    pub fn set_https_addr(&self, addr: SocketAddr) {
        let _ = self.https.set(addr);
    }

    pub fn set_http_addr(&self, addr: SocketAddr) {
        let _ = self.http.set(addr);
    }

    /// Where HTTPS listens, while it does.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        matches!(self.status(), Status::Ready(_))
            .then(|| self.https.get().copied())
            .flatten()
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.get().copied()
    }

    /// Checks the certificates every [`CHECK_INTERVAL`] until `shutdown`.
    pub async fn keep_current(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            // Cancel safety: both are cancel-safe; a check in progress is not interrupted
            // (it is awaited in the branch body).
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => self.check().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_check_makes_everything_and_the_next_keeps_it() {
        let data = tempfile::tempdir().unwrap();
        let first = ensure(data.path()).unwrap();
        assert_eq!(first.renewed, Some(Reason::NoCa));
        assert!(first.view.names.contains(&"kefu.local".to_string()));
        assert!(first.view.names.contains(&"127.0.0.1".to_string()));
        let second = ensure(data.path()).unwrap();
        assert_eq!(second.renewed, None);
        assert_eq!(second.view.ca_sha256, first.view.ca_sha256);
        assert_eq!(
            second.key.cert[0], first.key.cert[0],
            "the same server certificate"
        );
    }

    #[test]
    fn a_server_key_that_does_not_match_its_certificate_is_replaced_under_the_same_ca() {
        let data = tempfile::tempdir().unwrap();
        let first = ensure(data.path()).unwrap();
        let dir = files::dir(data.path());
        let elsewhere = tempfile::tempdir().unwrap();
        ensure(elsewhere.path()).unwrap();
        std::fs::copy(
            files::dir(elsewhere.path()).join("server.key"),
            dir.join("server.key"),
        )
        .unwrap();
        let next = ensure(data.path()).unwrap();
        assert_eq!(next.renewed, Some(Reason::NoServer));
        assert_eq!(next.view.ca_sha256, first.view.ca_sha256);
    }

    /// The certificate a client is shown by a TLS server running on `config`, trusting `ca`.
    async fn presented(config: Arc<rustls::ServerConfig>, ca: &[u8]) -> Vec<u8> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await;
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.to_vec())).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect("kefu.local".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        server.await.unwrap();
        cert
    }

    #[tokio::test]
    async fn a_new_certificate_is_served_by_the_running_configuration() {
        let data = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::default();
        cfg.storage.data_dir = data.path().to_path_buf();
        let service = Service::start(&cfg).await;
        let Status::Ready(view) = service.status() else {
            panic!("HTTPS ready at start");
        };
        // One configuration for the listener's whole life, as `app` builds it.
        let config = service.server_config().unwrap();
        let first = presented(Arc::clone(&config), &view.ca_der).await;
        // A check with nothing due changes nothing...
        service.check().await;
        assert_eq!(presented(Arc::clone(&config), &view.ca_der).await, first);
        // ...one that makes a new certificate has the same listener present it.
        std::fs::remove_file(files::dir(data.path()).join("server.crt")).unwrap();
        service.check().await;
        let second = presented(Arc::clone(&config), &view.ca_der).await;
        assert_ne!(second, first);
        let Status::Ready(after) = service.status() else {
            panic!("still ready");
        };
        assert_eq!(after.ca_sha256, view.ca_sha256, "the same CA signed it");
    }

    #[tokio::test]
    async fn off_is_off_and_a_damaged_ca_is_reported() {
        let data = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::default();
        cfg.storage.data_dir = data.path().to_path_buf();
        cfg.tls.enabled = false;
        let service = Service::start(&cfg).await;
        assert!(matches!(service.status(), Status::Off));
        assert!(service.server_config().is_none());
        assert!(!files::dir(data.path()).exists());

        cfg.tls.enabled = true;
        drop(Service::start(&cfg).await);
        std::fs::write(files::dir(data.path()).join("ca.key"), "junk").unwrap();
        let service = Service::start(&cfg).await;
        let Status::Failed(why) = service.status() else {
            panic!("a damaged CA fails");
        };
        assert!(why.contains("ca.key"), "{why}");
        assert!(service.server_config().is_none());
    }
}

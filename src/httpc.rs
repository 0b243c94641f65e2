//! A small HTTP/1.1 client for kefud's outgoing calls (webhooks, WeChat's API, a LAN language
//! model): one request per connection, a deadline on the whole exchange, the answer read up to
//! a cap. `https://` uses rustls (ring) with the system's CA certificates.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("not an http:// or https:// URL: {0:?}")]
    Url(String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the answer is larger than {0} bytes or cut off")]
    Body(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl Url {
    /// # Errors
    /// [`HttpError::Url`] for another scheme, no host or a bad port.
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = || HttpError::Url(url.to_string());
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| bad())?)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(bad());
        }
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// This URL with `suffix` appended to its path (`/v1` + `/chat/completions`).
    pub fn join(&self, suffix: &str) -> Url {
        let mut u = self.clone();
        u.path = format!("{}{}", u.path.trim_end_matches('/'), suffix);
        u
    }

    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends one request (`body` with content type `application/json` unless `headers` say
/// otherwise) and reads the answer up to `max_response` bytes, all within `timeout`.
///
/// # Errors
/// [`HttpError`] for anything but an answer (any status) within the deadline.
pub async fn request(
    method: hyper::Method,
    url: &Url,
    headers: &[(&str, String)],
    body: Bytes,
    timeout: Duration,
    max_response: usize,
) -> Result<Response, HttpError> {
    tokio::time::timeout(timeout, exchange(method, url, headers, body, max_response))
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

async fn exchange(
    method: hyper::Method,
    url: &Url,
    headers: &[(&str, String)],
    body: Bytes,
    max_response: usize,
) -> Result<Response, HttpError> {
    let authority = url.authority();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| HttpError::Connect(authority.clone(), e))?;
    let _ = tcp.set_nodelay(true);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(hyper::header::HOST, &authority);
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|_| HttpError::Url(format!("{authority} (a header or the path is not valid)")))?;
    let response = if url.tls {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|_| HttpError::Url(url.host.clone()))?;
        let stream = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls(authority.clone(), e))?;
        send(TokioIo::new(stream), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), max_response)
        .collect()
        .await
        .map_err(|_| HttpError::Body(max_response))?
        .to_bytes();
    Ok(Response { status, body })
}

async fn send<T>(
    io: TokioIo<T>,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, HttpError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(req).await;
    // The body is read while the connection task still runs; it ends with the connection.
    drop(driver);
    Ok(response?)
}

/// rustls with ring and the system's CA certificates, built once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            tracing::warn!("no system CA certificates found: https:// calls will fail");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("invariant: ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = Url::parse("http://192.168.1.20:8080/v1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "192.168.1.20", 8080, "/v1")
        );
        assert_eq!(u.join("/chat/completions").path, "/v1/chat/completions");
        let u = Url::parse("https://api.weixin.qq.com/cgi-bin/token?grant_type=x").unwrap();
        assert_eq!(
            (u.tls, u.port, u.path.as_str()),
            (true, 443, "/cgi-bin/token?grant_type=x")
        );
        let u = Url::parse("http://llm.local").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert_eq!(Url::parse("http://h?x=1").unwrap().path, "/?x=1");
        for bad in [
            "ftp://x",
            "http://",
            "http://:80/",
            "http://h:port/",
            "http://u@h/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}

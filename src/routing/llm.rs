//! Summaries written by a language model on the shop's LAN (a llama.cpp server, Ollama, any
//! OpenAI-compatible `/chat/completions`). Optional and off by default: kefud works the same
//! without it, and falls back to the extractive summary when the endpoint fails or is slow.
//!
//! Plain `http://` only: such servers sit on the LAN, and kefud carries no TLS stack. The
//! request is one HTTP/1.1 POST with a deadline; the answer is read up to 1 MiB.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

const INSTRUCTION: &str = "You summarise customer-service conversations for the shop assistant \
who takes over. In at most three short sentences, in the conversation's language, say what the \
customer wants, what has been done, and what is still open. Keep order numbers, phone numbers \
and amounts exactly as written.";

#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Base URL, e.g. `http://192.168.1.20:8080/v1`; `/chat/completions` is appended.
    pub url: String,
    pub model: String,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("llm_url must start with http:// (got {0:?})")]
    Url(String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the endpoint answered {0}")]
    Status(u16),
    #[error("the answer is too large or cut off")]
    Body,
    #[error("the answer has no choices[0].message.content")]
    Shape,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Splits `http://host:port/base` into the authority and the request path.
pub fn endpoint(url: &str) -> Result<(String, String), LlmError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LlmError::Url(url.to_string()))?;
    let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(LlmError::Url(url.to_string()));
    }
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let base = base.trim_end_matches('/');
    let path = if base.is_empty() {
        "/chat/completions".to_string()
    } else {
        format!("/{base}/chat/completions")
    };
    Ok((authority, path))
}

/// Asks the model for a summary of `transcript` (one "Customer: ..." / "Agent: ..." line per
/// message).
///
/// # Errors
/// [`LlmError`] for anything but a well-formed answer within the deadline.
pub async fn summarise(cfg: &LlmConfig, transcript: &str) -> Result<String, LlmError> {
    tokio::time::timeout(cfg.timeout, request(cfg, transcript))
        .await
        .map_err(|_| LlmError::Timeout(cfg.timeout))?
}

async fn request(cfg: &LlmConfig, transcript: &str) -> Result<String, LlmError> {
    let (authority, path) = endpoint(&cfg.url)?;
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| LlmError::Connect(authority.clone(), e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(connection);
    let body = serde_json::json!({
        "model": cfg.model,
        "temperature": 0.2,
        "max_tokens": 300,
        "stream": false,
        "messages": [
            {"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": transcript},
        ],
    });
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, &authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("invariant: a request from valid parts");
    let response = sender.send_request(req).await?;
    let status = response.status();
    let collected = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|_| LlmError::Body)?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(LlmError::Status(status.as_u16()));
    }
    let v: serde_json::Value = serde_json::from_slice(&collected).map_err(|_| LlmError::Shape)?;
    v["choices"][0]["message"]["content"]
        .as_str()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or(LlmError::Shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            endpoint("http://192.168.1.20:8080/v1").unwrap(),
            ("192.168.1.20:8080".into(), "/v1/chat/completions".into())
        );
        assert_eq!(
            endpoint("http://llm.local/").unwrap(),
            ("llm.local:80".into(), "/chat/completions".into())
        );
        assert!(endpoint("https://api.example.com/v1").is_err());
        assert!(endpoint("http:///v1").is_err());
    }
}

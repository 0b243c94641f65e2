//! Summaries written by a language model on the shop's LAN (a llama.cpp server, Ollama, any
//! OpenAI-compatible `/chat/completions`). Optional and off by default: kefud works the same
//! without it, and falls back to the extractive summary when the endpoint fails or is slow.
//!
//! The request is one HTTP/1.1 POST ([`crate::httpc`]) with a deadline; the answer is read up
//! to 1 MiB.

use std::time::Duration;

use bytes::Bytes;

use crate::httpc::{self, HttpError, Url};

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
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the endpoint answered {0}")]
    Status(u16),
    #[error("the answer has no choices[0].message.content")]
    Shape,
}

/// The chat-completions endpoint under a base URL such as `http://host:port/v1`.
///
/// # Errors
/// [`LlmError::Http`] for a URL that is not http:// or https://.
pub fn endpoint(url: &str) -> Result<Url, LlmError> {
    Ok(Url::parse(url)?.join("/chat/completions"))
}

/// Asks the model for a summary of `transcript` (one "Customer: ..." / "Agent: ..." line per
/// message).
///
/// # Errors
/// [`LlmError`] for anything but a well-formed answer within the deadline.
pub async fn summarise(cfg: &LlmConfig, transcript: &str) -> Result<String, LlmError> {
    let url = endpoint(&cfg.url)?;
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
    let response = httpc::request(
        hyper::Method::POST,
        &url,
        &[],
        Bytes::from(body.to_string()),
        cfg.timeout,
        MAX_RESPONSE_BYTES,
    )
    .await?;
    if !response.is_success() {
        return Err(LlmError::Status(response.status));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|_| LlmError::Shape)?;
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
        let u = endpoint("http://192.168.1.20:8080/v1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("192.168.1.20", 8080, "/v1/chat/completions")
        );
        assert_eq!(
            endpoint("http://llm.local/").unwrap().path,
            "/chat/completions"
        );
        assert!(endpoint("https://api.example.com/v1").unwrap().tls);
        assert!(endpoint("http:///v1").is_err());
        assert!(endpoint("ftp://x/v1").is_err());
    }
}

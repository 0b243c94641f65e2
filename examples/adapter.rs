//! An integrator's channel adapter, whole: a line-based TCP chat (think of a kiosk or an
//! in-house IM speaking a simple protocol) connected to kefud.
//!
//! Protocol: a client connects to 127.0.0.1:7070 and sends its user name as the first line;
//! every further line is a message. kefud answers `ok <message_id>` once a message is
//! durable, and writes agents' replies as `reply <message_id> <text>` while the user is
//! connected. A reply to a user who is offline is retried by the outbox until they return.
//!
//! Run: `cargo run --example adapter` (kefud's embedded defaults, console on :8080), then
//! `nc 127.0.0.1 7070`, type a name, then messages; answer them from the console.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kefud::channel::{
    Adapter, BoxFuture, Description, Health, Inbound, Outbound, OutboundKind, SendError,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The channel name of this IM's contacts in kefud.
pub const CHANNEL: &str = "tcpchat";

pub struct TcpChat {
    listener: Mutex<Option<TcpListener>>,
    /// Connected users: name → the writer task's queue.
    online: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
    stop: CancellationToken,
}

impl TcpChat {
    pub fn new(listener: TcpListener) -> Self {
        TcpChat {
            listener: Mutex::new(Some(listener)),
            online: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
        }
    }

    /// One client: its name, then its messages into kefud, acknowledged once durable.
    async fn serve(self: Arc<Self>, socket: tokio::net::TcpStream, inbound: Inbound) {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let Ok(Some(name)) = lines.next_line().await else {
            return;
        };
        let name = name.trim().to_string();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        self.online.lock().unwrap().insert(name.clone(), tx.clone());
        let writer = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if write
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut n = 0u64;
        while let Ok(Some(text)) = lines.next_line().await {
            n += 1;
            // A real IM has its own message ids; this protocol numbers lines per connection,
            // so the id must include something unique to the connection.
            let client_id = format!("{}-{n}", std::process::id());
            let answer = match inbound.submit(CHANNEL, &name, &client_id, text).await {
                Ok(pending) => match pending.durable().await {
                    Ok(id) => format!("ok {id}"),
                    Err(e) => format!("error {e}"),
                },
                Err(e) => format!("error {e}"),
            };
            let _ = tx.send(answer);
        }
        self.online.lock().unwrap().remove(&name);
        writer.abort();
    }
}

impl Adapter for TcpChat {
    fn describe(&self) -> Description {
        Description {
            name: "tcpchat".into(),
            channels: vec![CHANNEL.into()],
            max_in_flight: 8,
            events: false,
        }
    }

    fn start(self: Arc<Self>, inbound: Inbound) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let listener = self.listener.lock().unwrap().take().expect("started once");
            loop {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    accepted = listener.accept() => {
                        if let Ok((socket, _)) = accepted {
                            tokio::spawn(Arc::clone(&self).serve(socket, inbound.clone()));
                        }
                    }
                }
            }
        })
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            if message.kind != OutboundKind::Message {
                return Err(SendError::Refused("only messages".into()));
            }
            let user = message.to.external_id.as_str();
            let queue = self.online.lock().unwrap().get(user).cloned();
            let line = format!("reply {} {}", message.id, message.text.replace('\n', " "));
            match queue {
                Some(tx) if tx.send(line).is_ok() => Ok(()),
                _ => Err(SendError::Retry(format!("{user} is not connected"))),
            }
        })
    }

    fn health(&self) -> Health {
        let online = self.online.lock().unwrap().len() as u64;
        Health {
            state: if self.stop.is_cancelled() {
                "stopped"
            } else {
                "connected"
            },
            detail: "listening for TCP chat clients".into(),
            counters: vec![("online", online)],
        }
    }

    fn stop(&self) {
        self.stop.cancel();
    }
}

#[allow(dead_code)] // tests/example_adapter.rs includes this file without its main
fn main() -> anyhow::Result<()> {
    let cfg = kefud::config::Config::default();
    let log = kefud::telemetry::init(&cfg.log.level);
    let reloader = kefud::reload::Reloader { path: None, log };
    let runtime = tokio::runtime::Runtime::new()?;
    let shutdown = CancellationToken::new();
    runtime.spawn(kefud::app::cancel_on_signal(shutdown.clone()));
    runtime.block_on(async {
        let chat = Arc::new(TcpChat::new(TcpListener::bind("127.0.0.1:7070").await?));
        kefud::app::run_with_adapters(cfg, reloader, shutdown, vec![chat]).await?;
        Ok(())
    })
}

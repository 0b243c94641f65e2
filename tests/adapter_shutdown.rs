//! Shutdown is bounded whatever a channel adapter is doing: an adapter whose receiving side
//! never returns (a wedged bridge, an integrator's adapter that ignores `stop`) does not hold
//! up the daemon, which still stops in order and syncs its journal.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kefud::channel::{Adapter, BoxFuture, Description, Health, Inbound, Outbound, SendError};

/// An adapter whose receiving side ignores `stop` and never returns.
struct Wedged;

impl Adapter for Wedged {
    fn describe(&self) -> Description {
        Description {
            name: "wedged".into(),
            channels: vec!["wedged".into()],
            max_in_flight: 1,
            events: false,
        }
    }

    fn start(self: Arc<Self>, _inbound: Inbound) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }

    fn send<'a>(&'a self, _message: &'a Outbound) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async { Err(SendError::Retry("wedged".into())) })
    }

    fn health(&self) -> Health {
        Health {
            state: "connected",
            detail: String::new(),
            counters: Vec::new(),
        }
    }

    fn stop(&self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_adapter_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = kefud::config::Config::parse(&format!(
        "[server]\nlisten = \"127.0.0.1:{http_port}\"\n[storage]\ndata_dir = {:?}\n",
        dir.path().join("data").display().to_string()
    ))
    .unwrap();
    let log = kefud::telemetry::init("warn");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(kefud::app::run_with_adapters(
        cfg,
        kefud::reload::Reloader { path: None, log },
        shutdown.clone(),
        vec![Arc::new(Wedged)],
    ));
    let healthz = format!("http://127.0.0.1:{http_port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&healthz).await.is_err() {
        assert!(Instant::now() < deadline, "kefud did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    shutdown.cancel();
    tokio::time::timeout(
        kefud::channel::runtime::STOP_DEADLINE + Duration::from_secs(20),
        daemon,
    )
    .await
    .expect("kefud stops although an adapter never does")
    .unwrap()
    .expect("and stops cleanly");
}

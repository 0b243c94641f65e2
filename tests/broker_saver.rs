//! `kefud broker-saver` beside a real mosquitto with the SD image's config: QoS 1 messages the
//! broker acknowledged for a persistent session whose client is away (kefud stopped) survive
//! `kill -9` of the broker (the nearest thing to a power cut a test can do to one process)
//! when the saver runs, and are lost without it: the control that shows the saver is what
//! keeps them. The SD image's QEMU test (image/test-boot.sh, B3/B4) does the same across a real
//! power cut with kefud as the subscriber.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kefud_testkit::Mosquitto;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

const MESSAGES: usize = 200;

fn image_broker(dir: &Path) -> Mosquitto {
    let conf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("image/overlay/etc/mosquitto/conf.d/kefu.conf");
    Mosquitto::start(&conf, Some(dir)).unwrap_or_else(|e| panic!("{e:#}"))
}

struct Saver(Child);

impl Saver {
    fn start(broker: &Mosquitto) -> Saver {
        Saver(
            Command::new(env!("CARGO_BIN_EXE_kefud"))
                .args([
                    "broker-saver",
                    "--broker",
                    &format!("127.0.0.1:{}", broker.port),
                ])
                .args(["--pid", &broker.pid().unwrap().to_string()])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(port: u16, id: &str, clean: bool) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5))
        .set_clean_session(clean);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (client, mut events) = AsyncClient::new(opts.clone(), 256);
        while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(5), events.poll()).await
        {
            if let Event::Incoming(Packet::ConnAck(_)) = event {
                return (client, events);
            }
        }
        assert!(Instant::now() < deadline, "cannot connect to the broker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a persistent session `kefud-like` gets after the broker was killed and started again,
/// of MESSAGES published (each acknowledged) while its client was away.
async fn kept_across_a_kill(with_saver: bool) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = image_broker(dir.path());
    let saver = with_saver.then(|| Saver::start(&broker));
    // The session: subscribed, then away (as kefud is while stopped).
    let (client, mut events) = connect(broker.port, "kefud-like", false).await;
    client
        .subscribe("kefu/in/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    client.disconnect().await.unwrap();
    while events.poll().await.is_ok() {}
    // The saver takes a moment to subscribe; then a kiosk publishes, each acknowledged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (kiosk, mut kiosk_events) = connect(broker.port, "kiosk", true).await;
    for i in 0..MESSAGES {
        kiosk
            .publish(
                "kefu/in/kiosk/table-1",
                QoS::AtLeastOnce,
                false,
                format!("{{\"client_id\":\"m{i}\",\"text\":\"hello {i}\"}}"),
            )
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < MESSAGES {
        if let Event::Incoming(Packet::PubAck(_)) = kiosk_events.poll().await.unwrap() {
            acked += 1;
        }
    }
    // The saver asks for a save within 100 ms of what it saw; then the "power cut".
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(saver);
    broker.kill9();
    broker.start_again().unwrap();
    let (_client, mut events) = connect(broker.port, "kefud-like", false).await;
    let mut received = 0;
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(3), events.poll()).await {
        if let Event::Incoming(Packet::Publish(_)) = event {
            received += 1;
        }
    }
    received
}

#[tokio::test]
async fn acknowledged_messages_survive_a_broker_kill_with_the_saver_and_not_without() {
    assert_eq!(
        kept_across_a_kill(true).await,
        MESSAGES,
        "with kefud broker-saver, every message the broker acknowledged is kept"
    );
    assert_eq!(
        kept_across_a_kill(false).await,
        0,
        "the control: without the saver the image's broker loses them (its periodic save is 300 s)"
    );
}

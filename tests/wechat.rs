//! The WeChat official account channel against a local stand-in for WeChat's API, built from
//! the documented requests and answers (`/cgi-bin/token`, `/cgi-bin/message/custom/send`,
//! errcodes 40001 and 43004), and WeChat's calls to the callback URL as documented (signed
//! GET verification; signed POSTs of text, image and subscribe XML).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::Json;
use common::*;
use reqwest::Client;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const TOKEN: &str = "kefuToken2026";
const APP_ID: &str = "wx1234567890abcdef";
const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The stand-in's state: tokens issued (the last is valid), messages sent, who unfollowed.
#[derive(Default)]
struct WeChatApi {
    tokens: Vec<String>,
    sent: Vec<Value>,
    unfollowed: Vec<String>,
}

async fn start_api(state: Arc<Mutex<WeChatApi>>) -> u16 {
    async fn token(
        State(s): State<Arc<Mutex<WeChatApi>>>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Json<Value> {
        if q.get("grant_type").map(String::as_str) != Some("client_credential")
            || q.get("appid").map(String::as_str) != Some(APP_ID)
            || q.get("secret").map(String::as_str) != Some(APP_SECRET)
        {
            return Json(json!({"errcode": 40013, "errmsg": "invalid appid"}));
        }
        let mut s = s.lock().unwrap();
        let t = format!("ACCESS_TOKEN_{}", s.tokens.len() + 1);
        s.tokens.push(t.clone());
        Json(json!({"access_token": t, "expires_in": 7200}))
    }
    async fn send(
        State(s): State<Arc<Mutex<WeChatApi>>>,
        Query(q): Query<std::collections::HashMap<String, String>>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let mut s = s.lock().unwrap();
        if q.get("access_token") != s.tokens.last() {
            return Json(
                json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}),
            );
        }
        if s.unfollowed.iter().any(|u| body["touser"] == u.as_str()) {
            return Json(json!({"errcode": 43004, "errmsg": "require subscribe"}));
        }
        s.sent.push(body);
        Json(json!({"errcode": 0, "errmsg": "ok"}))
    }
    let app = axum::Router::new()
        .route("/cgi-bin/token", axum::routing::get(token))
        .route("/cgi-bin/message/custom/send", axum::routing::post(send))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn config(api_port: u16) -> String {
    format!(
        "[wechat]\nenabled = true\ntoken = \"{TOKEN}\"\napp_id = \"{APP_ID}\"\napp_secret = \"{APP_SECRET}\"\napi_base = \"http://127.0.0.1:{api_port}\"\n"
    )
}

fn sign(timestamp: &str, nonce: &str) -> String {
    let mut parts = [TOKEN, timestamp, nonce];
    parts.sort_unstable();
    Sha1::digest(parts.concat().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_secs() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// A fresh nonce per call, as WeChat sends.
fn nonce() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string()
}

/// WeChat's POST of one message; returns the status and the body.
async fn wechat_post(d: &TestDaemon, xml: &str, good_signature: bool) -> (u16, String) {
    wechat_post_signed(d, xml, &now_secs(), &nonce(), good_signature).await
}

async fn wechat_post_signed(
    d: &TestDaemon,
    xml: &str,
    ts: &str,
    nonce: &str,
    good_signature: bool,
) -> (u16, String) {
    let signature = if good_signature {
        sign(ts, nonce)
    } else {
        "0".repeat(40)
    };
    let r = Client::new()
        .post(d.http(&format!(
            "/wechat/callback?signature={signature}&timestamp={ts}&nonce={nonce}&openid=oUser"
        )))
        .header("content-type", "text/xml")
        .body(xml.to_string())
        // WeChat gives up (and retries) after 5 seconds.
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("answered within WeChat's 5 seconds");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

fn text_xml(openid: &str, msg_id: u64, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>1795770000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

async fn get(d: &TestDaemon, token: &str, path: &str) -> Value {
    Client::new()
        .get(d.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn thread_of(d: &TestDaemon, token: &str, openid: &str) -> (u64, Vec<String>) {
    let list = get(d, token, "/api/v1/conversations?status=all").await;
    let c = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"] == openid)
        .unwrap_or_else(|| panic!("no conversation of {openid}: {list}"))
        .clone();
    assert_eq!(c["channel"], "wechat");
    let id = c["id"].as_u64().unwrap();
    let thread = get(d, token, &format!("/api/v1/conversations/{id}/messages")).await;
    let texts = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    (id, texts)
}

async fn reply(d: &TestDaemon, token: &str, conversation: u64, text: &str) -> u64 {
    let r = Client::new()
        .post(d.http(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(token)
        .json(&json!({"text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["message_id"]
        .as_u64()
        .unwrap()
}

async fn wait_delivery(d: &TestDaemon, token: &str, id: u64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get(d, token, &format!("/api/v1/messages/{id}/delivery")).await;
        if v["state"] == state {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "delivery {v}, wanted {state}:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_messages_in_and_replies_out_through_the_customer_service_api() {
    let api = Arc::new(Mutex::new(WeChatApi::default()));
    let port = start_api(Arc::clone(&api)).await;
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &config(port));
    let token = login(&d, "li", "password-li").await;

    // URL verification: echostr back for a valid signature, 403 otherwise.
    let c = Client::new();
    let ts = now_secs();
    let ok = c
        .get(d.http(&format!(
            "/wechat/callback?signature={}&timestamp={ts}&nonce=42&echostr=5837397520",
            sign(&ts, "42")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status().as_u16(), ok.text().await.unwrap()),
        (200, "5837397520".to_string())
    );
    let bad = c
        .get(d.http(&format!(
            "/wechat/callback?signature=abc&timestamp={ts}&nonce=42&echostr=1"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);

    let openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
    assert_eq!(
        wechat_post(
            &d,
            &text_xml(openid, 6054768590064713728, "你好, 营业到几点?"),
            true
        )
        .await,
        (200, "success".into())
    );
    // WeChat's retry of the same message (no answer seen in time): stored once.
    assert_eq!(
        wechat_post(
            &d,
            &text_xml(openid, 6054768590064713728, "你好, 营业到几点?"),
            true
        )
        .await
        .0,
        200
    );
    let image = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>1795770001</CreateTime><MsgType><![CDATA[image]]></MsgType>\
         <PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz/abc/0]]></PicUrl><MediaId><![CDATA[media1]]></MediaId><MsgId>6054768590064713729</MsgId></xml>"
    );
    assert_eq!(wechat_post(&d, &image, true).await.0, 200);
    let voice = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>1795770002</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId>\
         <Format><![CDATA[amr]]></Format><MsgId>6054768590064713730</MsgId></xml>"
    );
    assert_eq!(
        wechat_post(&d, &voice, true).await,
        (200, "success".into()),
        "acknowledged, not stored"
    );
    let follow = "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[oNewFollower]]></FromUserName>\
                  <CreateTime>1795770003</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>";
    assert_eq!(wechat_post(&d, follow, true).await.0, 200);
    assert_eq!(
        wechat_post(&d, &text_xml(openid, 1, "forged"), false)
            .await
            .0,
        403
    );
    // A captured signed call replayed with other XML: answered, not stored.
    let (ts, replayed) = (now_secs(), nonce());
    assert_eq!(
        wechat_post_signed(&d, &text_xml(openid, 2, "genuine"), &ts, &replayed, true)
            .await
            .0,
        200
    );
    assert_eq!(
        wechat_post_signed(&d, &text_xml(openid, 3, "replayed"), &ts, &replayed, true).await,
        (200, "success".into())
    );
    // A signed call from long ago: refused.
    let old = (now_secs().parse::<u64>().unwrap() - 3600).to_string();
    assert_eq!(
        wechat_post_signed(&d, &text_xml(openid, 4, "stale"), &old, &nonce(), true)
            .await
            .0,
        403
    );
    assert_eq!(
        wechat_post(&d, "<html>not wechat</html>", true).await.0,
        400
    );

    let (conversation, texts) = thread_of(&d, &token, openid).await;
    assert_eq!(
        texts,
        [
            "你好, 营业到几点?",
            "[图片 image] http://mmbiz.qpic.cn/mmbiz/abc/0",
            "genuine"
        ]
    );
    assert_eq!(
        thread_of(&d, &token, "oNewFollower").await.1,
        ["[关注 subscribed]"]
    );

    // The reply goes out through the customer-service API with the cached token.
    let first = reply(&d, &token, conversation, "我们营业到晚上九点").await;
    wait_delivery(&d, &token, first, "delivered").await;
    {
        let api = api.lock().unwrap();
        assert_eq!(api.sent.len(), 1);
        assert_eq!(
            api.sent[0],
            json!({"touser": openid, "msgtype": "text", "text": {"content": "我们营业到晚上九点"}})
        );
        assert_eq!(api.tokens.len(), 1, "one token fetched and reused");
    }
    // WeChat invalidates the token (another server fetched one): errcode 40001, fetched anew.
    api.lock()
        .unwrap()
        .tokens
        .push("ACCESS_TOKEN_ELSEWHERE".into());
    let second = reply(&d, &token, conversation, "欢迎光临").await;
    wait_delivery(&d, &token, second, "delivered").await;
    assert_eq!(api.lock().unwrap().tokens.len(), 3);
    assert_eq!(api.lock().unwrap().sent.len(), 2);

    // A customer who unfollowed cannot be written to: dead at once (errcode 43004).
    api.lock().unwrap().unfollowed.push("oNewFollower".into());
    let (gone, _) = thread_of(&d, &token, "oNewFollower").await;
    let refused = reply(&d, &token, gone, "谢谢关注").await;
    let dead = wait_delivery(&d, &token, refused, "dead").await;
    assert_eq!(dead["attempts"], 1);
    assert!(
        dead["last_error"].as_str().unwrap().contains("43004"),
        "{dead}"
    );

    let channels = get(&d, &token, "/api/v1/channels").await;
    let wechat = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "wechat")
        .unwrap()
        .clone();
    assert_eq!(wechat["state"], "connected", "{wechat}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_callback_is_off_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let r = Client::new()
        .get(d.http(&format!(
            "/wechat/callback?signature={}&timestamp={}&nonce=2&echostr=3",
            sign(&now_secs(), "2"),
            now_secs()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Safe mode (安全模式): a message encrypted by OpenSSL the way WeChat documents it (AES-256-CBC,
/// key from the EncodingAESKey, IV its first 16 bytes, PKCS#7 to 32 bytes, over 16 random
/// bytes + length + XML + app id), signed with msg_signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_messages_are_verified_and_decrypted() {
    use base64::Engine;
    const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    let api = Arc::new(Mutex::new(WeChatApi::default()));
    let port = start_api(Arc::clone(&api)).await;
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(
        dir.path(),
        &format!("{}encoding_aes_key = \"{AES_KEY}\"\n", config(port)),
    );
    let token = login(&d, "li", "password-li").await;

    let key = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{AES_KEY}="))
    .unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let encrypt = |xml: &str, app_id: &str| -> String {
        let mut raw = b"0123456789abcdef".to_vec();
        raw.extend_from_slice(&(xml.len() as u32).to_be_bytes());
        raw.extend_from_slice(xml.as_bytes());
        raw.extend_from_slice(app_id.as_bytes());
        let pad = 32 - raw.len() % 32;
        raw.extend(std::iter::repeat(pad as u8).take(pad));
        let path = dir.path().join("plain.bin");
        std::fs::write(&path, &raw).unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "enc",
                "-aes-256-cbc",
                "-nopad",
                "-K",
                &hex(&key),
                "-iv",
                &hex(&key[..16]),
                "-in",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        base64::engine::general_purpose::STANDARD.encode(out.stdout)
    };
    let post = |encrypted: String, msg_signature: Option<String>| {
        let (ts, n) = (now_secs(), nonce());
        let msg_signature = msg_signature.unwrap_or_else(|| {
            let mut parts = [TOKEN, ts.as_str(), n.as_str(), encrypted.as_str()];
            parts.sort_unstable();
            Sha1::digest(parts.concat().as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let url = d.http(&format!(
            "/wechat/callback?signature={}&timestamp={ts}&nonce={n}&encrypt_type=aes&msg_signature={msg_signature}&openid=o",
            sign(&ts, &n)
        ));
        let body = format!("<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>");
        async move {
            let r = Client::new().post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    let openid = "oSafeModeUser_1234567890abc";
    let secret = encrypt(&text_xml(openid, 77, "加密模式的消息"), APP_ID);
    assert_eq!(post(secret.clone(), None).await, (200, "success".into()));
    assert_eq!(
        post(secret, Some("0".repeat(40))).await.0,
        403,
        "a wrong msg_signature"
    );
    assert_eq!(
        post(
            encrypt(
                &text_xml(openid, 78, "for another account"),
                "wx_other_app_id"
            ),
            None
        )
        .await
        .0,
        400
    );
    let (_, texts) = thread_of(&d, &token, openid).await;
    assert_eq!(texts, ["加密模式的消息"]);
}

/// Each signed URL is taken once, whatever it was signed for: a captured verification GET or
/// a call kefud acknowledges without storing (voice) cannot carry forged XML in afterwards,
/// while WeChat's own retry of a stored message (same timestamp and nonce) is still answered
/// `success` and stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls_are_single_use_and_retries_of_stored_messages_are_answered() {
    let api = Arc::new(Mutex::new(WeChatApi::default()));
    let port = start_api(Arc::clone(&api)).await;
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", true);
    let d = TestDaemon::start(dir.path(), &config(port));
    let token = login(&d, "li", "password-li").await;
    let openid = "oReplayVictim_0123456789abcd";

    // The verification GET's URL, replayed as a POST with forged XML.
    let (ts, n) = (now_secs(), nonce());
    let verified = Client::new()
        .get(d.http(&format!(
            "/wechat/callback?signature={}&timestamp={ts}&nonce={n}&echostr=77",
            sign(&ts, &n)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let (status, _) =
        wechat_post_signed(&d, &text_xml(openid, 501, "forged via GET"), &ts, &n, true).await;
    assert_ne!(status, 503, "a replay is not worth retrying");

    // An unsupported call's URL (a voice message, acknowledged unstored), replayed with text.
    let (ts, n) = (now_secs(), nonce());
    let voice = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>1795770002</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId>\
         <Format><![CDATA[amr]]></Format><MsgId>502</MsgId></xml>"
    );
    assert_eq!(
        wechat_post_signed(&d, &voice, &ts, &n, true).await,
        (200, "success".into())
    );
    wechat_post_signed(
        &d,
        &text_xml(openid, 503, "forged via voice"),
        &ts,
        &n,
        true,
    )
    .await;

    // A genuine message, then WeChat's retry of it with the same URL: success, stored once.
    let (ts, n) = (now_secs(), nonce());
    let genuine = text_xml(openid, 504, "genuine");
    for _ in 0..2 {
        assert_eq!(
            wechat_post_signed(&d, &genuine, &ts, &n, true).await,
            (200, "success".into())
        );
    }

    let (_, texts) = thread_of(&d, &token, openid).await;
    assert_eq!(texts, ["genuine"]);
}

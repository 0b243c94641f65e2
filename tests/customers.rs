//! Customers with names on the real binary: agents edit contacts, customers fill the chat's
//! form, search finds them by name, phone or e-mail, and signed identities cannot be forged
//! (no secret, another key, a changed name, the user: namespace, uploads).

mod common;

use common::day_one::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_edit_contacts_and_customers_fill_the_form_and_signed_identities_cannot_be_forged() {
    let (_dir, d) = start();
    let api = Api::new(&d);
    let boss = login(&d, "boss", "boss-password-1").await;
    let ann = login(&d, "ann", "ann-password-12").await;
    let conversation = visitor_writes(&d, &api, &ann, "formfill").await;
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/conversations/{conversation}"),
            None,
        )
        .await;
    let contact = v["contact_id"].as_u64().unwrap();

    // The widget's form: before writing, no contact; bad input; then kept.
    let (s, _) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/profile",
            Some(json!({"visitor_id": "silent", "name": "X"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/profile",
            Some(json!({"visitor_id": "formfill", "email": "no-at-sign"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_profile"))
    );
    let (s, v) = api
        .call(
            None,
            Method::POST,
            "/api/v1/visitor/profile",
            Some(json!({"visitor_id": "formfill", "name": "Li Wei", "phone": "+86 138 0000 0000"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/contacts/{contact}"),
            None,
        )
        .await;
    assert_eq!(
        (v["name"].as_str(), v["phone"].as_str()),
        (Some("Li Wei"), Some("+86 138 0000 0000"))
    );
    let (_, v) = api
        .call(Some(&ann), Method::GET, "/api/v1/conversations", None)
        .await;
    assert_eq!(v["conversations"][0]["contact_name"], "Li Wei");

    // Agents edit: notes too; an empty field removes it; bad input; authorization.
    let (s, _) = api
        .call(
            None,
            Method::PUT,
            &format!("/api/v1/contacts/{contact}"),
            Some(json!({"name": "Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = api
        .call(
            Some(&ann),
            Method::PUT,
            &format!("/api/v1/contacts/{contact}"),
            Some(json!({"phone": "call me maybe"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_profile"))
    );
    let (s, _) = api
        .call(
            Some(&ann),
            Method::PUT,
            "/api/v1/contacts/424242",
            Some(json!({"name": "Z"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .call(Some(&ann), Method::PUT, &format!("/api/v1/contacts/{contact}"), Some(json!({"email": "li@example.com", "phone": "", "notes": "Likes oolong.\nPays cash."})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "Li Wei");
    assert_eq!(v["phone"], "");
    assert_eq!(v["email"], "li@example.com");
    assert_eq!(v["notes"], "Likes oolong.\nPays cash.");

    // Search finds the customer by name, e-mail or phone, and names them beside their messages.
    for q in ["li wei", "LI@EXAMPLE", "li%"] {
        let (s, v) = api
            .call(
                Some(&ann),
                Method::GET,
                &format!("/api/v1/search?q={}", urlencode(q)),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let hits = v["contacts"].as_array().unwrap();
        if q == "li%" {
            assert!(hits.is_empty(), "% is a character, not a wildcard: {v}");
        } else {
            assert_eq!(hits.len(), 1, "{q}: {v}");
            assert_eq!(hits[0]["contact_id"].as_u64(), Some(contact));
            assert_eq!(hits[0]["conversation_id"].as_u64(), Some(conversation));
        }
    }
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            "/api/v1/search?q=green%20tea",
            None,
        )
        .await;
    assert_eq!(v["messages"][0]["contact_name"], "Li Wei", "{v}");

    // Signed identities: off until an admin makes the secret.
    let (s, _) = api
        .call(
            Some(&ann),
            Method::POST,
            "/api/v1/settings/identity-secret",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let signed = |secret: &str, id: &str, name: &str, email: &str| {
        format!(
            "user_id={id}&user_name={}&user_email={}&user_signature={}",
            urlencode(name),
            urlencode(email),
            kefud::signed_identity::sign(secret.as_bytes(), id, name, email)
        )
    };
    let url = d.ws(&format!(
        "/ws/visitor?{}",
        signed("guess", "42", "Wang Fang", "wf@example.com")
    ));
    let refused = tokio_tungstenite::connect_async(&url).await;
    assert!(refused.is_err(), "no secret yet: refused");
    let (s, v) = api
        .call(
            Some(&boss),
            Method::POST,
            "/api/v1/settings/identity-secret",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let secret = v["secret"].as_str().unwrap().to_string();
    let (_, v) = api
        .call(
            Some(&boss),
            Method::GET,
            "/api/v1/settings/identity-secret",
            None,
        )
        .await;
    assert_eq!(v["secret"], secret);

    // Forged (another key, or a changed name): refused with 403 before the upgrade.
    for query in [
        signed("not the secret", "42", "Wang Fang", "wf@example.com"),
        signed(&secret, "42", "Wang Fang", "wf@example.com").replace("Wang", "Evil"),
    ] {
        let r = api
            .c
            .get(d.http(&format!("/api/v1/visitor/conversation?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_signature");
        assert!(
            tokio_tungstenite::connect_async(d.ws(&format!("/ws/visitor?{query}")))
                .await
                .is_err()
        );
    }
    // A plain visitor cannot take the signed user's identity.
    assert!(
        tokio_tungstenite::connect_async(d.ws("/ws/visitor?visitor_id=user:42"))
            .await
            .is_err()
    );

    // Signed: the identity is user:42 on every device; the name and e-mail come with it.
    let query = signed(&secret, "42", "Wang Fang", "wf@example.com");
    let mut ws = connect(&d.ws(&format!("/ws/visitor?{query}"))).await;
    let (welcome, _) = next_of_type(&mut ws, "welcome", 10).await;
    assert!(welcome.to_string().contains("user:42"), "{welcome}");
    send_for_ack(&mut ws, "s1", "where is my order?")
        .await
        .expect("acked");
    let mut body: Value = serde_json::from_str(&format!(
        "{{{}}}",
        query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                format!("\"{k}\":{}", json!(urldecode(v)))
            })
            .collect::<Vec<_>>()
            .join(",")
    ))
    .unwrap();
    body["name"] = json!("Someone Else");
    let (s, v) = api
        .call(None, Method::POST, "/api/v1/visitor/profile", Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let signed_contact = v["contact_id"].as_u64().unwrap();
    let (_, v) = api
        .call(
            Some(&ann),
            Method::GET,
            &format!("/api/v1/contacts/{signed_contact}"),
            None,
        )
        .await;
    assert_eq!(
        (v["name"].as_str(), v["email"].as_str()),
        (Some("Wang Fang"), Some("wf@example.com")),
        "the shop's word wins: {v}"
    );
    let mut again = connect(&d.ws(&format!("/ws/visitor?{query}&after=0"))).await;
    let (m, _) = next_of_type(&mut again, "message", 10).await;
    assert_eq!(
        m["text"], "where is my order?",
        "a second device sees the same thread"
    );
}

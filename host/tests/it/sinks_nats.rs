//! Issue 6: the nats sink against the local NATS JetStream (127.0.0.1:4222): the stream is
//! created, events arrive on `<prefix>.<source>.<kind>` with `Nats-Msg-Id` = event id, and
//! JetStream drops a redelivery of the same id. Without a server the test prints
//! `SKIPPED: …` and passes, unless `IDHOST_REQUIRE_SERVICES` names `nats` (CI), where it fails.

use std::collections::BTreeMap;

use crate::support::events::Scratch;
use crate::support::events::{config, listening, sqlite_events, sync_ok, unique};
use async_nats::jetstream;

const BASE: &str =
    "users = 20\ngroups = 3\nroles = 1\npage_size = 7\nmemberships = 30\nmissing_users = [7]";
const CHANGED: &str = "users = 20\ngroups = 3\nroles = 1\npage_size = 7\nmemberships = 33\nmissing_users = [5]\ndisabled_users = [2]\nrename_users = [3]";

#[test]
fn events_are_published_per_kind_with_their_id_as_msg_id_and_deduplicated() {
    if !listening("127.0.0.1:4222") {
        idhost_e2e::services::skip("nats", "no NATS server on 127.0.0.1:4222");
        return;
    }
    let stream = unique("IDHOST_T").to_uppercase();
    let prefix = unique("idhost_t");
    let _cleanup = DeleteStream(stream.clone());
    let s = Scratch::new();
    let sinks = format!(
        r#"
[sinks.db]
type = "sqlite"
path = "out.db"
records = ["resource", "entitlement", "grant", "event", "sync_run"]

[sinks.bus]
type = "nats"
url = "nats://127.0.0.1:4222"
stream = "{stream}"
subject_prefix = "{prefix}"
"#
    );
    sync_ok(&s, &config(&s, BASE, &sinks), &[]);
    sync_ok(&s, &config(&s, CHANGED, &sinks), &[]);
    let stored = sqlite_events(&s);
    assert_eq!(stored.len(), 13);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("connect");
        let js = jetstream::new(client);
        let mut handle = js
            .get_stream(&stream)
            .await
            .expect("the sink created the stream");
        let info = handle.info().await.expect("info").clone();
        assert_eq!(info.config.subjects, [format!("{prefix}.>")]);
        assert_eq!(
            info.state.messages,
            13 + 2,
            "13 events and two sync_run records"
        );

        let mut events = BTreeMap::new();
        let mut runs = 0;
        for seq in info.state.first_sequence..=info.state.last_sequence {
            let msg = handle.get_raw_message(seq).await.expect("message");
            let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("JSON");
            let msg_id = msg
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_owned())
                .expect("Nats-Msg-Id");
            match body["kind"].as_str() {
                Some("event") => {
                    let kind = body["event"].as_str().unwrap();
                    assert_eq!(msg.subject.as_str(), format!("{prefix}.dir.{kind}"));
                    assert_eq!(body["id"].as_str(), Some(msg_id.as_str()));
                    events.insert(
                        msg_id,
                        (
                            kind.to_owned(),
                            body["subject"].as_str().unwrap().to_owned(),
                        ),
                    );
                }
                Some("sync_run") => {
                    assert_eq!(msg.subject.as_str(), format!("{prefix}.dir.sync_run"));
                    runs += 1;
                }
                other => panic!("unexpected record {other:?}"),
            }
        }
        assert_eq!(runs, 2);
        let want: BTreeMap<String, (String, String)> = stored
            .iter()
            .map(|e| (e.0.clone(), (e.1.clone(), e.2.clone())))
            .collect();
        assert_eq!(events, want, "every event, once, under its id");

        // A redelivery with the same id is recognized and dropped by JetStream.
        let (id, (kind, _)) = want.iter().next().unwrap();
        let ack = js
            .send_publish(
                format!("{prefix}.dir.{kind}"),
                jetstream::context::Publish::build()
                    .payload("again".into())
                    .message_id(id),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
        assert!(ack.duplicate);
        assert_eq!(handle.info().await.expect("info").state.messages, 15);
    });
}

/// Deletes the test's stream when the test ends, passed or failed.
struct DeleteStream(String);

impl Drop for DeleteStream {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().ok()?;
            rt.block_on(async {
                let client = async_nats::connect("nats://127.0.0.1:4222").await.ok()?;
                jetstream::new(client).delete_stream(&name).await.ok()
            })
        })
        .join();
    }
}

//! Issue 5 end to end: config/clickwrap-oomnitza.toml run by the real `idhost` binary with the
//! real Clickwrap plugin against the Clickwrap simulator (served in the test on 127.0.0.1:0),
//! into the Oomnitza-style CSV export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::export::{Csv, plugin_dir, require_plugin, toml_path, toml_str};
use serde_json::Value;
use sim_clickwrap::{SimConfig, Simulator};
use sim_common::{Fault, FaultRule};

const USERS: usize = 3000;
const ENV: [(&str, &str); 3] = [
    ("CLICKWRAP_CLIENT_ID", "clickwrap-client"),
    ("CLICKWRAP_CLIENT_SECRET", "clickwrap-secret"),
    ("CLICKWRAP_ACCOUNT_ID", "1001"),
];
/// The nine mapped columns of the shipped config, in file order (name order).
/// In the order config/clickwrap-oomnitza.toml maps them.
const COLUMNS: [&str; 9] = [
    "Email",
    "Locale",
    "Name",
    "Time Zone",
    "User Id",
    "Verified",
    "Verified Time",
    "Connect: Credentials",
    "Connector Sync Time",
];

/// The shipped config, pointed at the simulator, the test's plugins and a temp directory.
struct Oomnitza {
    _dir: tempfile::TempDir,
    config: PathBuf,
    csv: PathBuf,
    text: String,
}

impl Oomnitza {
    fn new(sim_url: &str) -> Self {
        require_plugin("idhost_clickwrap", "idhost-clickwrap");
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/clickwrap-oomnitza.toml");
        let original = std::fs::read_to_string(&shipped).expect("config/clickwrap-oomnitza.toml");
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("out/people.csv");
        let replace = |text: String, from: &str, to: String| {
            assert!(text.contains(from), "the shipped config has `{from}`");
            text.replacen(from, &to, 1)
        };
        let mut text = replace(
            original,
            "plugin_dir = \"../target/release\"",
            format!("plugin_dir = {}", toml_path(&plugin_dir())),
        );
        text = replace(
            text,
            "state_path = \"../out/clickwrap-oomnitza-state.db\"",
            format!("state_path = {}", toml_path(&dir.path().join("state.db"))),
        );
        text = replace(
            text,
            "path = \"../out/people.csv\"",
            format!("path = {}", toml_path(&csv)),
        );
        text = replace(
            text,
            "# base_url = \"https://api.pactsafe.com/v1.1\"",
            format!(
                "base_url = {}\ntoken_url = {}",
                toml_str(&format!("{sim_url}/v1.1")),
                toml_str(&format!("{sim_url}/oauth/token"))
            ),
        );
        let config = dir.path().join("clickwrap-oomnitza.toml");
        let this = Self {
            _dir: dir,
            config,
            csv,
            text,
        };
        this.write();
        this
    }

    fn write(&self) {
        std::fs::write(&self.config, &self.text).expect("config written");
    }

    fn mode(&mut self, mode: &str) {
        let at = self.text.find("mode = \"").expect("mode line");
        let end = at + self.text[at..].find('\n').expect("line end");
        self.text
            .replace_range(at..end, &format!("mode = \"{mode}\""));
        self.write();
    }

    async fn sync(&self) -> (i32, String) {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || crate::support::export::sync(&config, &[], &ENV))
            .await
            .expect("sync task")
    }

    async fn sync_ok(&self) -> String {
        let (code, stderr) = self.sync().await;
        assert_eq!(code, 0, "idhost sync failed:\n{stderr}");
        stderr
    }

    fn read(&self) -> Csv {
        Csv::read(&self.csv)
    }
}

async fn simulator() -> (Simulator, sim_common::RunningServer) {
    let sim = Simulator::new(SimConfig {
        users: USERS,
        ..SimConfig::default()
    });
    let server = sim.serve(0).await.expect("simulator serves");
    (sim, server)
}

/// The seven Oomnitza fields of a Clickwrap user as the API renders it.
fn oomnitza_fields(user: &Value) -> BTreeMap<&'static str, String> {
    let text = |k: &str| match &user[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    BTreeMap::from([
        ("Email", text("email")),
        ("Locale", text("locale")),
        ("Name", text("name")),
        ("Time Zone", text("time_zone")),
        ("User Id", text("id")),
        ("Verified", text("verified")),
        ("Verified Time", text("verified_time")),
    ])
}

/// Every row of the CSV matches the simulator's user of the same id, field for field.
fn assert_rows_match(csv: &Csv, sim: &Simulator, ids: &[u64]) {
    for id in ids {
        let row = csv.row("User Id", &id.to_string());
        let user = sim
            .user(*id)
            .unwrap_or_else(|| panic!("simulator user {id}"));
        for (column, want) in oomnitza_fields(&user) {
            assert_eq!(row[csv.col(column)], want, "user {id}, column {column}");
        }
        assert_eq!(row[csv.col("active")], "true", "user {id}");
        assert_eq!(row[csv.col("source")], "clickwrap");
        assert_eq!(row[csv.col("Connect: Credentials")], "clickwrap");
        assert_eq!(
            row[csv.col("Connector Sync Time")],
            row[csv.col("synced_at")]
        );
    }
}

fn sorted(ids: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut v: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickwrap_users_become_oomnitza_people_rows_deactivated_when_gone_and_reactivated_on_return()
 {
    let (sim, server) = simulator().await;
    let o = Oomnitza::new(&server.url());

    // 1. 3,000 users, exactly.
    o.sync_ok().await;
    let first = o.read();
    let mut header: Vec<&str> = COLUMNS.to_vec();
    header.extend(["active", "source", "synced_at"]);
    assert_eq!(first.header, header);
    assert_eq!(first.rows.len(), USERS);
    let ids = sim.user_ids();
    assert_eq!(sorted(ids.iter().copied()), {
        let mut v = first.values("User Id");
        v.sort();
        v
    });
    assert_rows_match(&first, &sim, &ids);
    let accented = first
        .values("Name")
        .iter()
        .filter(|n| !n.is_ascii())
        .count();
    assert!(
        accented > 0,
        "the dataset carries non-ASCII names, written as UTF-8"
    );

    // 2. Ten users leave, five are invited.
    let gone: Vec<u64> = ids.iter().copied().step_by(300).take(10).collect();
    for id in &gone {
        assert!(sim.remove_user(*id));
    }
    let added: Vec<u64> = (0..5)
        .map(|i| {
            sim.add_user(
                &format!("new.hire{i}@example.com"),
                &format!("New Hire {i}"),
            )
        })
        .collect();
    o.sync_ok().await;
    let second = o.read();
    assert_eq!(second.rows.len(), USERS + 5);
    assert_eq!(
        second.keys_where_active("User Id", false),
        sorted(gone.iter().copied())
    );
    assert_rows_match(&second, &sim, &added);
    let new_rows: Vec<String> = second.values("User Id")[USERS..].to_vec();
    assert_eq!(
        new_rows,
        added.iter().map(u64::to_string).collect::<Vec<_>>(),
        "new rows are appended"
    );
    for id in &added {
        let row = second.row("User Id", &id.to_string());
        assert_eq!(
            (
                row[second.col("Verified")].as_str(),
                row[second.col("Verified Time")].as_str()
            ),
            ("false", "")
        );
    }
    // The departed keep their values and the time of the last sync that saw them.
    for id in &gone {
        let (old, new) = (
            first.row("User Id", &id.to_string()),
            second.row("User Id", &id.to_string()),
        );
        assert_eq!(old[..first.col("active")], new[..second.col("active")]);
        assert_eq!(old[first.col("synced_at")], new[second.col("synced_at")]);
    }

    // 3. Three come back.
    for id in &gone[..3] {
        assert!(sim.restore_user(*id));
    }
    o.sync_ok().await;
    let third = o.read();
    assert_eq!(third.rows.len(), USERS + 5);
    assert_eq!(
        third.keys_where_active("User Id", false),
        sorted(gone[3..].iter().copied())
    );
    assert_rows_match(&third, &sim, &gone[..3]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_leaves_changed_clickwrap_users_unchanged() {
    let (sim, server) = simulator().await;
    let mut o = Oomnitza::new(&server.url());
    o.sync_ok().await;
    let before = o.read();
    let ids = sim.user_ids();
    for id in &ids[..5] {
        assert!(sim.set_user_field(*id, "name", Value::from("Renamed Upstream")));
        assert!(sim.set_user_field(*id, "locale", Value::from("fr-FR")));
    }
    let new = sim.add_user("late.joiner@example.com", "Late Joiner");
    o.mode("create_only");
    o.sync_ok().await;
    let after = o.read();
    assert_eq!(after.rows.len(), USERS + 1);
    let mapped = before.col("active");
    for (old, row) in before.rows.iter().zip(&after.rows) {
        assert_eq!(
            old[..mapped],
            row[..mapped],
            "create_only does not rewrite an existing row"
        );
    }
    assert_rows_match(&after, &sim, &[new]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_only_updates_clickwrap_users_and_adds_no_rows() {
    let (sim, server) = simulator().await;
    let mut o = Oomnitza::new(&server.url());
    o.sync_ok().await;
    let ids = sim.user_ids();
    assert!(sim.set_user_field(ids[7], "name", Value::from("Changed Name")));
    assert!(sim.set_user_field(ids[8], "verified", Value::from(false)));
    for i in 0..5 {
        sim.add_user(&format!("not.added{i}@example.com"), "Not Added");
    }
    o.mode("update_only");
    o.sync_ok().await;
    let after = o.read();
    assert_eq!(after.rows.len(), USERS, "update_only adds no rows");
    assert_rows_match(&after, &sim, &ids[7..9]);
    assert_eq!(
        after.row("User Id", &ids[7].to_string())[after.col("Name")],
        "Changed Name"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clickwrap_sync_failing_on_page_3_changes_nothing_in_the_export() {
    let (sim, server) = simulator().await;
    let o = Oomnitza::new(&server.url());
    o.sync_ok().await;
    let before = std::fs::read(&o.csv).expect("csv");
    for id in sim.user_ids().into_iter().take(10) {
        sim.remove_user(id);
    }
    sim.add_user("someone.new@example.com", "Someone New");
    sim.faults().log().clear();
    sim.faults().push(
        FaultRule::any(Fault::status(503, r#"{"error":{"message":"Service unavailable","status":503,"name":"ServiceUnavailableError"}}"#))
            .on_path("/members")
            .after(2)
            .times(u32::MAX),
    );
    let (code, stderr) = o.sync().await;
    assert_eq!(code, 1, "the sync fails:\n{stderr}");
    let pages: Vec<(String, u16)> = sim
        .faults()
        .log()
        .records()
        .into_iter()
        .filter(|r| r.path.ends_with("/members"))
        .map(|r| {
            let page = r
                .query
                .split('&')
                .find_map(|p| p.strip_prefix("page="))
                .unwrap_or("")
                .to_owned();
            (page, r.status)
        })
        .collect();
    assert_eq!(pages[..2], [("1".to_owned(), 200), ("2".to_owned(), 200)]);
    assert!(
        pages[2..].iter().all(|p| p == &("3".to_owned(), 503)),
        "it failed on page 3: {pages:?}"
    );
    assert_eq!(
        std::fs::read(&o.csv).expect("csv"),
        before,
        "the export is byte for byte unchanged"
    );
    server.shutdown().await;
}

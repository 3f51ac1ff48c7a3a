//! The export block of config/clickwrap-oomnitza.toml, unchanged, fed by the Ironclad and the
//! Entra connectors (real plugins, their simulators on 127.0.0.1:0): the export has no
//! connector-specific code, so the same people table, keys and deactivation work for them.

use std::path::{Path, PathBuf};

use crate::support::export::{Csv, plugin_dir, require_plugin, toml_path};

/// A config with `source` (a `[sources.NAME]` block for `name`) and the shipped people export.
struct Export {
    _dir: tempfile::TempDir,
    config: PathBuf,
    csv: PathBuf,
}

impl Export {
    fn new(name: &str, source: &str) -> Self {
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/clickwrap-oomnitza.toml");
        let text = std::fs::read_to_string(&shipped).expect("config/clickwrap-oomnitza.toml");
        let sink = &text[text.find("[sinks.people]").expect("the people export")..];
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("people.csv");
        let sink = sink
            .replacen(
                "path = \"../out/people.csv\"",
                &format!("path = {}", toml_path(&csv)),
                1,
            )
            .replacen(
                "inputs = [\"clickwrap\"]",
                &format!("inputs = [\"{name}\"]"),
                1,
            );
        let config = dir.path().join("idhost.toml");
        std::fs::write(
            &config,
            format!(
                "plugin_dir = {}\nstate_path = {}\n\n{source}\n{sink}",
                toml_path(&plugin_dir()),
                toml_path(&dir.path().join("state.db"))
            ),
        )
        .expect("config written");
        Self {
            _dir: dir,
            config,
            csv,
        }
    }

    async fn sync(&self, extra: &[&str]) -> String {
        let config = self.config.clone();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            crate::support::export::sync_ok(&config, &extra, &[])
        })
        .await
        .expect("sync task")
    }

    fn read(&self) -> Csv {
        Csv::read(&self.csv)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oomnitza_export_works_unchanged_with_the_ironclad_source() {
    require_plugin("idhost_ironclad", "idhost-ironclad");
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 300,
        ..sim_ironclad::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("simulator");
    let e = Export::new(
        "legal",
        &format!(
            "[sources.legal]\nconnector = \"ironclad\"\nresource_types = [\"user\"]\n[sources.legal.settings]\n\
             base_url = \"{}\"\nbearer_token = \"{}\"\nas_user_email = \"{}\"\n",
            server.url(),
            sim.config().bearer_token,
            sim.config().admin_email
        ),
    );
    e.sync(&[]).await;
    let csv = e.read();
    let primary = |id: &str| -> String {
        let user = sim.user(id).expect("user");
        let emails = user["emails"].as_array().cloned().unwrap_or_default();
        emails
            .iter()
            .find(|m| m["primary"] == true)
            .or(emails.first())
            .and_then(|m| m["value"].as_str())
            .or(user["userName"].as_str())
            .expect("an address")
            .to_owned()
    };
    let ids = sim.user_ids();
    let mut want: Vec<String> = ids.iter().map(|id| primary(id)).collect();
    want.sort();
    let mut got = csv.values("Email");
    got.sort();
    assert_eq!(
        got, want,
        "one row per Ironclad user, keyed by primary email"
    );
    assert!(csv.values("source").iter().all(|s| s == "legal"));
    assert!(csv.values("active").iter().all(|a| a == "true"));

    let gone = ids[5].clone();
    let gone_email = primary(&gone);
    assert!(sim.remove_user(&gone));
    e.sync(&[]).await;
    let after = e.read();
    assert_eq!(after.rows.len(), ids.len());
    assert_eq!(after.keys_where_active("Email", false), vec![gone_email]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oomnitza_export_works_unchanged_with_the_entra_source() {
    require_plugin("idhost_entra", "idhost-entra");
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 300,
        managed_identities: 3,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("simulator");
    let c = sim.config();
    let e = Export::new(
        "corp",
        &format!(
            "[sources.corp]\nconnector = \"entra\"\nresource_types = [\"user\"]\n[sources.corp.settings]\n\
             tenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\ngraph_url = \"{url}\"\nlogin_url = \"{url}\"\n",
            c.tenant_id,
            c.client_id,
            c.client_secret,
            url = server.url(),
        ),
    );
    let stderr = e.sync(&[]).await;
    let csv = e.read();
    let users = sim.counts().users;
    assert_eq!(csv.rows.len(), users, "one row per user");
    assert!(
        csv.values("Email").iter().all(|m| m.contains('@')),
        "every row has an email key"
    );
    assert!(csv.values("source").iter().all(|s| s == "corp"));
    // Managed identities have no email or Clickwrap user id: reported and skipped, not merged.
    assert!(
        stderr.contains("records without a value in any sync_key column were skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("count=3"),
        "the three managed identities: {stderr}"
    );

    // Disabled accounts (accountEnabled false) are inactive rows from the start.
    let inactive_before = csv.keys_where_active("Email", false);
    let added = sim.add_user("Export Test Person");
    let gone = sim
        .user_ids()
        .into_iter()
        .find(|id| id != &added)
        .expect("a user");
    assert!(sim.remove_user(&gone));
    // A delta sync: the host completes it with the unchanged users of its snapshot, so the
    // export still sees every user and deactivates exactly the removed one.
    let stderr = e.sync(&[]).await;
    assert!(
        stderr.contains("carried unchanged records over"),
        "the second sync is incremental:\n{stderr}"
    );
    let after = e.read();
    let inactive_after = after.keys_where_active("Email", false);
    let newly: Vec<&String> = inactive_after
        .iter()
        .filter(|m| !inactive_before.contains(m))
        .collect();
    assert_eq!(
        newly.len(),
        1,
        "exactly the removed user is deactivated: {newly:?}"
    );
    assert_eq!(inactive_after.len(), inactive_before.len() + 1);
    assert_eq!(
        after.rows.len(),
        csv.rows.len() + 1,
        "the new user is added"
    );
    assert_eq!(
        after.row("Name", "Export Test Person")[after.col("active")],
        "true"
    );
    server.shutdown().await;
}

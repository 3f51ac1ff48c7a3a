//! Issue 7: `idhost demo` as a user runs it — a subprocess in an empty working directory,
//! small sizes — syncs the three simulated upstreams into `idhost-demo.db` and says so.
//! Issue 16: it writes `idhost-demo.toml`, changes the upstreams and syncs again, and every
//! "Try next" hint it prints runs afterwards with no simulator and no credential.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::BTreeMap;

use idhost_e2e::{Scratch, require_plugins};

/// `(connector, status, resources, entitlements, grants)` of each source row of the summary
/// table (`SOURCE CONNECTOR STATUS RESOURCES ENTITLEMENTS GRANTS REQUESTS SECONDS`).
fn summary_rows(stderr: &str) -> BTreeMap<String, (String, String, u64, u64, u64)> {
    let mut lines = stderr.lines().skip_while(|l| !l.starts_with("SOURCE "));
    let header = lines.next().expect("the summary table header");
    assert!(header.split_whitespace().eq([
        "SOURCE",
        "CONNECTOR",
        "STATUS",
        "RESOURCES",
        "ENTITLEMENTS",
        "GRANTS",
        "REQUESTS",
        "SECONDS"
    ]));
    lines
        .map_while(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 8).then(|| {
                let n = |i: usize| cols[i].parse::<u64>().expect("a count");
                (
                    cols[0].to_owned(),
                    (cols[1].to_owned(), cols[2].to_owned(), n(3), n(4), n(5)),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_syncs_three_simulated_upstreams_into_sqlite_and_prints_a_summary() {
    require_plugins(&["idhost_ironclad", "idhost_entra", "idhost_clickwrap"]);
    let s = Scratch::new();
    let run = s
        .run(&[
            "demo",
            "--ironclad-users",
            "300",
            "--entra-users",
            "500",
            "--clickwrap-users",
            "200",
        ])
        .await;
    eprintln!(
        "[e2e] demo: exit {:?} in {:.2} s",
        run.code,
        run.elapsed.as_secs_f64()
    );
    run.expect_code(0);

    let rows = summary_rows(&run.stderr);
    let names: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(names, ["clickwrap", "corp", "legal"], "{}", run.text());
    for (source, connector) in [
        ("legal", "ironclad"),
        ("corp", "entra"),
        ("clickwrap", "clickwrap"),
    ] {
        let (conn, status, resources, entitlements, grants) = &rows[source];
        assert_eq!(conn, connector, "{}", run.text());
        assert_eq!(status, "succeeded", "{}", run.text());
        assert!(
            *resources > 0 && *entitlements > 0 && *grants > 0,
            "{source}: {}",
            run.text()
        );
    }
    assert!(run.stdout.contains("Try next:"), "{}", run.text());

    let db = s.db("idhost-demo.db");
    let users = |source: &str| {
        db.count(
            "SELECT count(*) FROM resources WHERE source = ?1 AND type = 'user'",
            [source],
        )
    };
    // The scripted change: Ironclad got three accounts (SCIM POST) and lost one (DELETE).
    assert_eq!(users("legal"), 300 + 3 - 1);
    assert_eq!(users("clickwrap"), 200);
    let corp_people = db.count(
        "SELECT count(*) FROM resources WHERE source = 'corp' AND type = 'user'
         AND json_extract(user, '$.account_type') = 'human'",
        [],
    );
    assert_eq!(
        corp_people,
        500 - 1,
        "Entra people (managed identities are extra), less the leaver"
    );
    for source in ["legal", "corp", "clickwrap"] {
        let (_, _, resources, entitlements, grants) = rows[source];
        let snap = db.snapshot(source);
        assert_eq!(
            snap.resources.values().sum::<i64>() as u64,
            resources,
            "{source}"
        );
        assert_eq!(snap.entitlements as u64, entitlements, "{source}");
        assert_eq!(snap.grants as u64, grants, "{source}");
        assert!(snap.grants > 0, "{source} has grants");
        let runs = db.sync_runs(source);
        assert_eq!(
            runs.len(),
            2,
            "{source}: before and after the scripted change"
        );
        assert!(runs.iter().all(|r| r.status == "succeeded"), "{source}");
    }
    let types = db.set("SELECT DISTINCT source || ':' || type FROM resources", []);
    for t in [
        "legal:user",
        "legal:group",
        "corp:user",
        "corp:group",
        "corp:app",
        "corp:role",
        "clickwrap:user",
        "clickwrap:site",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
}

/// The `idhost ...` lines under "Try next:".
fn hints(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Try next"))
        .skip(1)
        .map_while(|l| l.strip_prefix("  idhost "))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_demo_hint_runs_afterwards_with_no_simulator_and_no_credential() {
    require_plugins(&["idhost_ironclad", "idhost_entra", "idhost_clickwrap"]);
    let s = Scratch::new();
    let run = s
        .run(&[
            "demo",
            "--ironclad-users",
            "120",
            "--entra-users",
            "200",
            "--clickwrap-users",
            "50",
        ])
        .await;
    run.expect_code(0);
    let config = std::fs::read_to_string(s.path("idhost-demo.toml")).expect("idhost-demo.toml");
    assert!(config.contains("SIMULATORS' DEMO CREDENTIALS"), "{config}");
    assert!(
        config.contains("http://127.0.0.1:"),
        "loopback URLs: {config}"
    );
    assert!(!config.contains("${"), "every value filled in: {config}");
    assert!(config.contains("[identity]"));
    for line in [
        "changes  clickwrap  none",
        "orphans  clickwrap",
        "deleted_in_authoritative",
    ] {
        assert!(
            run.stderr.contains(line),
            "`{line}` in the summary: {}",
            run.text()
        );
    }
    let legal_changes = run
        .stderr
        .lines()
        .find(|l| l.contains("legal") && l.contains("created"))
        .unwrap_or_else(|| panic!("legal's changes: {}", run.text()));
    // `updated`: the new title, and the member counts of the groups that gained or lost members.
    for kind in ["3 created", "1 deactivated", "updated", "2 grant_added"] {
        assert!(legal_changes.contains(kind), "{kind} in `{legal_changes}`");
    }

    let hints = hints(&run.stdout);
    assert!(hints.len() >= 8, "{}", run.text());
    assert!(
        hints
            .iter()
            .all(|h| h.first().map(String::as_str) != Some("sqlite3")),
        "no sqlite3 needed"
    );
    let mut outputs = Vec::new();
    for hint in &hints {
        let args: Vec<&str> = hint.iter().map(String::as_str).collect();
        let out = s.run(&args).await;
        out.expect_code(0);
        assert!(
            !out.stdout.trim().is_empty(),
            "`idhost {}` answers: {}",
            args.join(" "),
            out.text()
        );
        outputs.push((args.join(" "), out));
    }
    let output_of = |needle: &str| {
        outputs
            .iter()
            .find(|(args, _)| args.contains(needle))
            .map(|(_, out)| out.stdout.clone())
            .unwrap_or_else(|| panic!("a hint with `{needle}`"))
    };
    // The nested person's access shows a path; the leaver still holds Ironclad access.
    let nested = output_of("--source corp");
    assert!(nested.contains("group:"), "{nested}");
    let orphans = output_of("orphans --source legal");
    assert!(orphans.contains("deleted_in_authoritative"), "{orphans}");
    let leaver = outputs
        .iter()
        .find(|(args, _)| args.contains("access") && args.ends_with("--source legal"))
        .map(|(_, out)| out.stdout.clone())
        .expect("the leaver's access hint");
    assert!(
        leaver.contains("group:"),
        "the leaver keeps an Ironclad group: {leaver}"
    );
    let diff = output_of("diff legal");
    for kind in ["created", "updated", "deactivated", "grant_added"] {
        assert!(diff.contains(kind), "{kind} in {diff}");
    }
    assert!(
        !diff.contains("lastModified"),
        "volatile fields are no change: {diff}"
    );
    let corp: serde_json::Value = serde_json::from_str(&output_of("diff corp")).expect("json");
    assert!(corp.as_array().is_some_and(|e| !e.is_empty()));
    assert!(s.path("idhost-demo-review.xlsx").exists());
}

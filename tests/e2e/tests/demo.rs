//! Issue 7: `idhost demo` as a user runs it — a subprocess in an empty working directory,
//! small sizes — syncs the three simulated upstreams into `idhost-demo.db` and says so.
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
    assert_eq!(users("legal"), 300);
    assert_eq!(users("clickwrap"), 200);
    let corp_people = db.count(
        "SELECT count(*) FROM resources WHERE source = 'corp' AND type = 'user'
         AND json_extract(user, '$.account_type') = 'human'",
        [],
    );
    assert_eq!(
        corp_people, 500,
        "Entra people (managed identities are extra)"
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
        assert_eq!(runs.len(), 1, "{source}");
        assert_eq!(runs[0].status, "succeeded", "{source}");
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

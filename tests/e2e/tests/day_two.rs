//! Issue 16, day two, against the simulators with the real plugins: effective access through
//! three levels of nesting and a cycle, checked against a membership closure computed here from
//! the Graph simulator's own data (independently of the host's code); the review of formula-like
//! names from Ironclad to CSV and XLSX; volatile fields; and a delete of a deleted user.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Read as _;
use std::path::PathBuf;

use idhost_e2e::{Run, Scratch, http, require_plugins, sqlite_sink, toml_str};
use serde_json::{Value, json};
use sim_common::RunningServer;

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn rows(run: &Run) -> Vec<Value> {
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("json: {e}\n{}", run.text()))
}

/// Every direct and indirect member of `group`, from the simulator's member lists alone.
fn closure(sim: &sim_graph::Simulator, group: &str) -> BTreeSet<String> {
    let groups: BTreeSet<String> = sim.group_ids().into_iter().collect();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([group.to_owned()]);
    let mut expanded = BTreeSet::new();
    while let Some(g) = queue.pop_front() {
        if !expanded.insert(g.clone()) {
            continue;
        }
        for member in sim.group_members(&g) {
            if groups.contains(&member) {
                queue.push_back(member.clone());
            }
            seen.insert(member);
        }
    }
    seen
}

fn bare(id: &str) -> String {
    id.split_once(':').map_or(id, |(_, rest)| rest).to_owned()
}

async fn graph_bearer(sim: &sim_graph::Simulator, server: &RunningServer) -> String {
    let c = sim.config();
    let url = server.url();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        percent_encode(&c.client_id),
        percent_encode(&c.client_secret),
        percent_encode(&format!("{url}/.default"))
    );
    let (status, body) = http(
        "POST",
        &format!("{url}/{}/oauth2/v2.0/token", c.tenant_id),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    assert_eq!(status, 200, "token: {body}");
    let token: Value = serde_json::from_str(&body).expect("token JSON");
    format!("Bearer {}", token["access_token"].as_str().expect("token"))
}

#[tokio::test(flavor = "multi_thread")]
async fn effective_access_follows_three_levels_of_nesting_and_a_cycle_like_the_simulators_closure()
{
    require_plugins(&["idhost_entra"]);
    // Four groups: none of them nested by the generated dataset (that starts at index 5).
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 40,
        groups: 4,
        memberships: 60,
        apps: 2,
        roles: 2,
        managed_identities: 1,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-graph");
    let url = server.url();
    let g = sim.group_ids();
    // g0 ∈ g1 ∈ g2 ∈ g3: three levels; g3 ∈ g1 closes a cycle g1 → g2 → g3 → g1.
    for (outer, inner) in [(1, 0), (2, 1), (3, 2), (1, 3)] {
        assert!(sim.add_member(&g[outer], &g[inner]), "{outer} ∋ {inner}");
    }
    // A person in g0 only, and what the outer groups hold, granted through Graph.
    let person = sim.add_user("Nested Person");
    assert!(sim.add_member(&g[0], &person));
    let bearer = graph_bearer(&sim, &server).await;
    let app = sim.app_ids()[0].clone();
    let (status, body) = http(
        "POST",
        &format!("{url}/v1.0/servicePrincipals/{app}/appRoleAssignedTo"),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &json!({"principalId": g[3], "resourceId": app,
                "appRoleId": "00000000-0000-0000-0000-000000000000"})
        .to_string(),
    )
    .await;
    assert_eq!(status, 201, "app role for g3: {body}");
    let role = sim.role_ids()[0].clone();
    let (status, body) = http(
        "POST",
        &format!("{url}/v1.0/directoryRoles/{role}/members/$ref"),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &json!({"@odata.id": format!("{url}/v1.0/directoryObjects/{}", g[2])}).to_string(),
    )
    .await;
    assert_eq!(status, 204, "directory role for g2: {body}");

    let s = Scratch::new();
    let c = sim.config();
    let config = s.config(&format!(
        "[sources.corp]\nconnector = \"entra\"\nread_only = true\n[sources.corp.settings]\n\
         tenant_id = {}\nclient_id = {}\nclient_secret = {}\ngraph_url = {u}\nlogin_url = {u}\n{}",
        toml_str(&c.tenant_id),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        sqlite_sink("idhost.db"),
        u = toml_str(&url),
    ));
    let config = config.to_string_lossy().into_owned();
    s.sync(&PathBuf::from(&config), &[]).await.expect_code(0);

    // who-has of every group's membership is exactly the simulator's closure.
    let mut containing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in &g {
        let expected = closure(&sim, group);
        for member in &expected {
            containing
                .entry(member.clone())
                .or_default()
                .insert(group.clone());
        }
        let ent = format!("group:{group}:member");
        let got: BTreeSet<String> = rows(
            &s.run(&["query", "-c", &config, "who-has", &ent, "-o", "json"])
                .await,
        )
        .iter()
        .map(|r| bare(r["principal"].as_str().expect("principal")))
        .collect();
        assert_eq!(got, expected, "members of {group}, nested and cyclic");
    }
    assert!(
        closure(&sim, &g[1]).contains(&g[1]),
        "the cycle makes g1 a member of itself"
    );
    // access: every user's group memberships are the groups whose closure holds them.
    for user in sim.user_ids() {
        let got: BTreeSet<String> = rows(
            &s.run(&[
                "query",
                "-c",
                &config,
                "access",
                &format!("user:{user}"),
                "-o",
                "json",
            ])
            .await,
        )
        .iter()
        .filter_map(|r| r["entitlement"].as_str())
        .filter_map(|e| {
            e.strip_suffix(":member")
                .and_then(|e| e.strip_prefix("group:"))
        })
        .map(str::to_owned)
        .collect();
        let expected = containing.get(&user).cloned().unwrap_or_default();
        assert_eq!(got, expected, "groups of {user}");
    }
    // The nested person's paths, outermost first; the app role and the directory role granted
    // to outer groups count for them.
    let access = rows(
        &s.run(&[
            "query",
            "-c",
            &config,
            "access",
            &format!("user:{person}"),
            "-o",
            "json",
        ])
        .await,
    );
    let via = |entitlement: &str| {
        access
            .iter()
            .find(|r| r["entitlement"] == entitlement)
            .map(|r| r["via"].clone())
            .unwrap_or_else(|| panic!("{entitlement} in {access:#?}"))
    };
    let group = |i: usize| format!("group:{}", g[i]);
    assert_eq!(via(&format!("group:{}:member", g[0])), Value::Null);
    assert_eq!(via(&format!("group:{}:member", g[1])), json!([group(0)]));
    assert_eq!(
        via(&format!("group:{}:member", g[2])),
        json!([group(1), group(0)])
    );
    assert_eq!(
        via(&format!("group:{}:member", g[3])),
        json!([group(2), group(1), group(0)])
    );
    assert_eq!(
        via(&format!("app:{app}:assignment")),
        json!([group(3), group(2), group(1), group(0)])
    );
    assert_eq!(
        via(&format!("role:{role}:member")),
        json!([group(2), group(1), group(0)])
    );
    // who-has of the app role names the person with the same path.
    let holders = rows(
        &s.run(&[
            "query",
            "-c",
            &config,
            "who-has",
            &format!("app:{app}:assignment"),
            "-o",
            "json",
        ])
        .await,
    );
    let person_row = holders
        .iter()
        .find(|r| r["principal"] == format!("user:{person}"))
        .expect("the person holds the app role");
    assert_eq!(person_row["principal_name"], "Nested Person");
    assert_eq!(
        person_row["via"],
        json!([group(3), group(2), group(1), group(0)])
    );
    // The review has the same rows as `access`, for every principal.
    s.run(&["review", "-c", &config, "-o", "review.csv"])
        .await
        .expect_code(0);
    let mut reader = csv::Reader::from_path(s.path("review.csv")).expect("review.csv");
    let mut reviewed: BTreeMap<String, Value> = BTreeMap::new();
    for record in reader.records() {
        let record = record.expect("a row");
        if record[1] == format!("user:{person}") {
            let via = if record[7].is_empty() {
                Value::Null
            } else {
                json!(record[7].split(" > ").collect::<Vec<_>>())
            };
            reviewed.insert(record[4].to_owned(), via);
        }
    }
    let from_access: BTreeMap<String, Value> = access
        .iter()
        .map(|r| {
            (
                r["entitlement"].as_str().unwrap().to_owned(),
                r["via"].clone(),
            )
        })
        .collect();
    assert_eq!(reviewed, from_access);
    server.shutdown().await;
}

/// Ironclad SCIM with a formula-like display name; `(sim, server, config path)`.
async fn ironclad(s: &Scratch) -> (sim_ironclad::Simulator, RunningServer, String) {
    require_plugins(&["idhost_ironclad"]);
    // The test edits users as an admin's SCIM client would: the API application is
    // registered for `scim.users.updateUsers` too (idhost's source asks for its defaults).
    let defaults = sim_ironclad::SimConfig::default();
    let mut registered_scopes = defaults.registered_scopes.clone();
    registered_scopes.push("scim.users.updateUsers".to_owned());
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 20,
        groups: 2,
        members_per_group: 5,
        registered_scopes,
        ..defaults
    });
    let server = sim.serve(0).await.expect("serve sim-ironclad");
    let c = sim.config();
    let config = s.config(&format!(
        "[sources.legal]\nconnector = \"ironclad\"\n[sources.legal.settings]\nbase_url = {}\n\
         client_id = {}\nclient_secret = {}\nas_user_email = {}\n{}",
        toml_str(&server.url()),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        toml_str(&c.admin_email),
        sqlite_sink("idhost.db").replace(
            "inputs = [\"*\"]",
            "inputs = [\"*\"]\nrecords = [\"resource\", \"entitlement\", \"grant\", \"event\", \"sync_run\"]"
        ),
    ));
    (sim, server, config.to_string_lossy().into_owned())
}

async fn ironclad_token(sim: &sim_ironclad::Simulator, server: &RunningServer) -> String {
    let c = sim.config();
    let (status, body) = http(
        "POST",
        &format!("{}/oauth/token", server.url()),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            percent_encode(&c.client_id),
            percent_encode(&c.client_secret)
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).expect("token JSON");
    format!("Bearer {}", token["access_token"].as_str().expect("token"))
}

async fn scim(
    sim: &sim_ironclad::Simulator,
    server: &RunningServer,
    method: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let bearer = ironclad_token(sim, server).await;
    let admin = sim.config().admin_email.clone();
    let (status, text) = http(
        method,
        &format!("{}/scim/v2{path}", server.url()),
        &[
            ("Authorization", &bearer),
            ("x-as-user-email", &admin),
            ("Content-Type", "application/scim+json"),
        ],
        &if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
    )
    .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The sheet names of an XLSX file, and sheet `n` (1-based) with the shared strings after it.
fn xlsx_sheet(path: &std::path::Path, n: usize) -> (Vec<String>, String) {
    let file = std::fs::File::open(path).expect("the xlsx");
    let mut zip = zip::ZipArchive::new(file).expect("an xlsx is a zip");
    let mut workbook = String::new();
    zip.by_name("xl/workbook.xml")
        .expect("workbook.xml")
        .read_to_string(&mut workbook)
        .expect("read");
    let names: Vec<String> = workbook
        .split("<sheet ")
        .skip(1)
        .filter_map(|s| {
            s.split("name=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect();
    let mut sheet = String::new();
    zip.by_name(&format!("xl/worksheets/sheet{n}.xml"))
        .expect("the sheet")
        .read_to_string(&mut sheet)
        .expect("read");
    if let Ok(mut shared) = zip.by_name("xl/sharedStrings.xml") {
        shared.read_to_string(&mut sheet).expect("read");
    }
    (names, sheet)
}

#[tokio::test(flavor = "multi_thread")]
async fn review_of_formula_like_names_is_formula_safe_in_csv_and_xlsx() {
    let s = Scratch::new();
    let (sim, server, config) = ironclad(&s).await;
    // A user whose name a spreadsheet would run (OWASP's example), in a group.
    let (status, created) = scim(
        &sim,
        &server,
        "POST",
        "/Users",
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "formula@example.com",
            "name": {"givenName": "=cmd|' /C calc'!A0", "familyName": "X"},
            "displayName": "=cmd|' /C calc'!A0",
            "emails": [{"value": "formula@example.com", "primary": true}],
            "active": true,
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, groups) = scim(&sim, &server, "GET", "/Groups", &Value::Null).await;
    let group = groups["Resources"][0]["id"]
        .as_str()
        .expect("a group")
        .to_owned();
    let (status, body) = scim(
        &sim,
        &server,
        "PATCH",
        &format!("/Groups/{group}"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]}),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    s.sync(&PathBuf::from(&config), &[]).await.expect_code(0);

    s.run(&["review", "-c", &config, "-o", "review.csv"])
        .await
        .expect_code(0);
    let csv = std::fs::read_to_string(s.path("review.csv")).expect("csv");
    let line = csv
        .lines()
        .find(|l| l.contains("formula@example.com"))
        .unwrap_or_else(|| panic!("the user's row in {csv}"));
    assert!(line.contains(",'=cmd|' /C calc'!A0,"), "{line}");

    s.run(&["review", "-c", &config, "-o", "review.xlsx"])
        .await
        .expect_code(0);
    let (names, summary) = xlsx_sheet(&s.path("review.xlsx"), 1);
    assert_eq!(names, ["Summary", "legal"]);
    assert!(summary.contains(">legal<"), "{summary}");
    let (_, sheet) = xlsx_sheet(&s.path("review.xlsx"), 2);
    assert!(!sheet.contains("<f>"), "no formula cell");
    assert!(
        sheet.contains("&apos;=cmd|&apos; /C calc&apos;!A0")
            || sheet.contains("'=cmd|' /C calc'!A0"),
        "{}",
        &sheet[..sheet.len().min(3000)]
    );
    assert!(sheet.contains("autoFilter"), "a reviewer can filter it");
    assert!(sheet.contains("<pane "), "the header row is frozen");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volatile_field_alone_is_no_change_and_a_deleted_user_is_said_to_be_deleted() {
    let s = Scratch::new();
    let (sim, server, config) = ironclad(&s).await;
    s.sync(&PathBuf::from(&config), &[]).await.expect_code(0);
    let db = s.db("idhost.db");
    let users: Vec<String> = db.strings(
        "SELECT id FROM resources WHERE source = 'legal' AND type = 'user'
           AND lower(json_extract(user, '$.login')) != 'it-admin@example.com' ORDER BY id LIMIT 2",
        [],
    );
    let (retitled, deleted) = (bare(&users[0]), bare(&users[1]));
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    // An update that changes nothing but meta.lastModified, and one that changes the title.
    let (status, before) = scim(
        &sim,
        &server,
        "GET",
        &format!("/Users/{deleted}"),
        &Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let title = before["title"].clone();
    let (status, _) = scim(
        &sim,
        &server,
        "PATCH",
        &format!("/Users/{deleted}"),
        &patch(json!([{"op": "replace", "path": "title", "value": title}])),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = scim(
        &sim,
        &server,
        "PATCH",
        &format!("/Users/{retitled}"),
        &patch(json!([{"op": "replace", "path": "title", "value": "Chief Counsel"}])),
    )
    .await;
    assert_eq!(status, 200);
    s.sync(&PathBuf::from(&config), &[]).await.expect_code(0);
    let events = rows(
        &s.run(&["query", "-c", &config, "diff", "legal", "-o", "json"])
            .await,
    );
    let updated: Vec<&Value> = events.iter().filter(|e| e["event"] == "updated").collect();
    assert_eq!(
        updated.len(),
        1,
        "only the retitled user changed: {events:#?}"
    );
    assert_eq!(updated[0]["subject"], format!("user:{retitled}"));
    let changed: Vec<&str> = updated[0]["changes"]
        .as_object()
        .expect("changes")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(changed, ["user.title"], "meta.lastModified is volatile");

    // Delete through the connector, then again: the second says it was already deleted.
    let source = ["provision", "-c", &config, "--source", "legal"];
    let first = s
        .run(
            &[
                &source[..],
                &["delete", "--resource", &format!("user:{deleted}")],
            ]
            .concat(),
        )
        .await;
    first.expect_code(0);
    assert!(first.stdout.contains(": changed"), "{}", first.text());
    let second = s
        .run(
            &[
                &source[..],
                &["delete", "--resource", &format!("user:{deleted}")],
            ]
            .concat(),
        )
        .await;
    second.expect_code(0);
    assert!(second.stdout.contains(": already"), "{}", second.text());
    assert!(
        second.stdout.contains("was already deleted"),
        "{}",
        second.text()
    );
    let audit = rows(&s.run(&["audit", "-c", &config, "-o", "json"]).await);
    assert_eq!(audit[0]["result"], "already");
    assert_eq!(audit[1]["result"], "changed");
    server.shutdown().await;
}

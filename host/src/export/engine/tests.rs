use super::*;
use crate::config::SinkConfig;
use crate::export::plan::Plan;

fn plan(extra: &str) -> Plan {
    let text = format!(
        "[sources.a]\nconnector = \"x\"\n[sources.b]\nconnector = \"x\"\n\
         [sinks.people]\ntype = \"csv\"\npath = \"p.csv\"\nrecords = [\"user\"]\n{extra}\n\
         [sinks.people.mapping]\nEMAIL = \"user.emails.primary\"\nID = \"upstream_id\"\nNAME = \"display_name\"\n"
    );
    let config = crate::config::parse(std::path::Path::new("t.toml"), text, &|_| None)
        .expect("valid config");
    let sink: &SinkConfig = &config.sinks[0];
    Plan::new(sink).expect("valid export")
}

fn rec(email: Option<&str>, id: &str, name: &str) -> Staged {
    Staged {
        id: format!("user:{id}"),
        // Columns are in name order: EMAIL, ID, NAME.
        values: vec![
            email.map(str::to_owned),
            Some(id.to_owned()),
            Some(name.to_owned()),
        ],
        enabled: true,
    }
}

fn sync(source: &str, at: &str) -> SyncInfo<'static> {
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    SyncInfo {
        source: leak(source),
        synced_at: leak(at),
        complete: true,
    }
}

fn emails(t: &TargetTable) -> Vec<(String, bool)> {
    t.rows
        .iter()
        .map(|r| (r.values[0].clone().unwrap_or_default(), r.active))
        .collect()
}

const MODE: &str = "sync_key = \"EMAIL\"\ndeactivate_missing = true";

#[test]
fn first_sync_creates_rows_in_record_order_with_tracking_columns() {
    let p = plan(MODE);
    let mut t = TargetTable::empty(&p.names());
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("b@x"), "2", "B"), rec(Some("a@x"), "1", "A")],
        sync("a", "T1"),
    );
    assert_eq!((r.created, r.received), (2, 2));
    assert_eq!(emails(&t), vec![("b@x".into(), true), ("a@x".into(), true)]);
    assert_eq!(
        (t.rows[0].source.as_str(), t.rows[0].synced_at.as_str()),
        ("a", "T1")
    );
}

#[test]
fn missing_rows_are_deactivated_and_come_back_reactivated() {
    let p = plan(MODE);
    let mut t = TargetTable::empty(&p.names());
    apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T1"),
    );
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A")],
        sync("a", "T2"),
    );
    assert_eq!((r.deactivated, r.unchanged), (1, 1));
    assert_eq!(
        emails(&t),
        vec![("a@x".into(), true), ("b@x".into(), false)]
    );
    assert_eq!(
        t.rows[1].synced_at, "T1",
        "synced_at is the last sync that saw the row"
    );
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T3"),
    );
    assert_eq!((r.reactivated, r.deactivated, r.created), (1, 0, 0));
    assert_eq!(emails(&t), vec![("a@x".into(), true), ("b@x".into(), true)]);
}

#[test]
fn an_incomplete_sync_deactivates_nobody() {
    let p = plan(MODE);
    let mut t = TargetTable::empty(&p.names());
    apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T1"),
    );
    let mut partial = sync("a", "T2");
    partial.complete = false;
    let r = apply(&p, &mut t, vec![], partial);
    assert_eq!((r.deactivated, r.missing_kept), (0, 2));
    assert!(t.rows.iter().all(|row| row.active));
}

#[test]
fn deactivation_touches_only_rows_last_written_by_the_syncing_source() {
    let p = plan(MODE);
    let mut t = TargetTable::empty(&p.names());
    apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A")],
        sync("a", "T1"),
    );
    apply(
        &p,
        &mut t,
        vec![rec(Some("b@x"), "9", "B")],
        sync("b", "T1"),
    );
    let r = apply(&p, &mut t, vec![], sync("a", "T2"));
    assert_eq!(r.deactivated, 1);
    assert_eq!(
        emails(&t),
        vec![("a@x".into(), false), ("b@x".into(), true)]
    );
    // The key is global: source b seeing a@x takes the row over and reactivates it.
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "7", "A"), rec(Some("b@x"), "9", "B")],
        sync("b", "T3"),
    );
    assert_eq!((r.reactivated, r.updated, r.created), (1, 1, 0));
    assert_eq!(t.rows[0].source, "b");
    let r = apply(&p, &mut t, vec![], sync("a", "T4"));
    assert_eq!(r.deactivated, 0, "a no longer owns any row");
}

#[test]
fn records_without_a_key_are_reported_and_skipped() {
    let p = plan(MODE);
    let mut t = TargetTable::empty(&p.names());
    let r = apply(
        &p,
        &mut t,
        vec![rec(None, "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T1"),
    );
    assert_eq!((r.no_key, r.created), (1, 1));
    assert_eq!(r.no_key_ids, vec!["user:1".to_owned()]);
    assert_eq!(t.rows.len(), 1);
}

#[test]
fn duplicates_in_one_sync_keep_the_first_record() {
    let p = plan(MODE);
    let mut t = TargetTable::empty(&p.names());
    let r = apply(
        &p,
        &mut t,
        vec![
            rec(Some("a@x"), "1", "First"),
            rec(Some("a@x"), "2", "Second"),
        ],
        sync("a", "T1"),
    );
    assert_eq!((r.created, r.duplicates), (1, 1));
    assert_eq!(t.rows[0].values[2].as_deref(), Some("First"));
    assert_eq!(r.duplicate_ids, vec!["user:2 (a@x)".to_owned()]);
}

#[test]
fn secondary_keys_find_rows_and_the_first_key_that_matches_wins() {
    let p = plan("sync_key = [\"EMAIL\", \"ID\"]\ndeactivate_missing = true");
    let mut t = TargetTable::empty(&p.names());
    apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T1"),
    );
    // Email changed upstream: the row is found by ID and its email is rewritten.
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a2@x"), "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T2"),
    );
    assert_eq!((r.updated, r.created, r.deactivated), (1, 0, 0));
    assert_eq!(
        emails(&t),
        vec![("a2@x".into(), true), ("b@x".into(), true)]
    );
    // The new email is indexed: the next sync finds the row by it.
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a2@x"), "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T3"),
    );
    assert_eq!((r.unchanged, r.created), (2, 0));
    // EMAIL outranks ID: a record matching row 2 by email and row 1 by id updates row 2.
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("b@x"), "1", "B")],
        sync("a", "T4"),
    );
    assert_eq!(r.updated, 1);
    assert_eq!(t.rows[1].values[1].as_deref(), Some("1"));
    // A record with no email is still keyed by ID.
    let r = apply(&p, &mut t, vec![rec(None, "5", "E")], sync("a", "T5"));
    assert_eq!((r.created, r.no_key), (1, 0));
}

#[test]
fn create_only_adds_rows_and_leaves_existing_values() {
    let p = plan("sync_key = \"EMAIL\"\nmode = \"create_only\"\ndeactivate_missing = true");
    let mut t = TargetTable::empty(&p.names());
    apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A")],
        sync("a", "T1"),
    );
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "Renamed"), rec(Some("c@x"), "3", "C")],
        sync("a", "T2"),
    );
    assert_eq!((r.kept, r.created, r.updated), (1, 1, 0));
    assert_eq!(t.rows[0].values[2].as_deref(), Some("A"));
    assert_eq!(
        t.rows[0].synced_at, "T2",
        "tracking columns follow every sync that sees the row"
    );
}

#[test]
fn update_only_updates_and_adds_no_rows() {
    let p = plan("sync_key = \"EMAIL\"\nmode = \"update_only\"");
    let mut t = TargetTable::empty(&p.names());
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A")],
        sync("a", "T1"),
    );
    assert_eq!((r.skipped_new, r.created), (1, 0));
    assert!(t.rows.is_empty());
    t.rows.push(Row {
        values: vec![Some("a@x".into()), Some("1".into()), Some("Old".into())],
        active: true,
        source: "import".into(),
        synced_at: "T0".into(),
    });
    let r = apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "New"), rec(Some("n@x"), "2", "N")],
        sync("a", "T2"),
    );
    assert_eq!((r.updated, r.skipped_new, r.created), (1, 1, 0));
    assert_eq!(t.rows.len(), 1);
    assert_eq!(t.rows[0].values[2].as_deref(), Some("New"));
}

#[test]
fn a_disabled_record_makes_its_row_inactive_without_deactivate_missing() {
    let p = plan("sync_key = \"EMAIL\"");
    let mut t = TargetTable::empty(&p.names());
    apply(
        &p,
        &mut t,
        vec![rec(Some("a@x"), "1", "A"), rec(Some("b@x"), "2", "B")],
        sync("a", "T1"),
    );
    let mut off = rec(Some("a@x"), "1", "A");
    off.enabled = false;
    let r = apply(&p, &mut t, vec![off], sync("a", "T2"));
    assert_eq!((r.disabled, r.deactivated, r.missing_kept), (1, 0, 1));
    assert_eq!(
        emails(&t),
        vec![("a@x".into(), false), ("b@x".into(), true)]
    );
}

use std::path::PathBuf;

use super::*;

fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    parse(Path::new("idhost.toml"), text.to_owned(), &move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

fn error_of(text: &str) -> String {
    match parse_with(text, &[]) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

const GOOD: &str = r#"
plugin_dir = "plugins"

[sources.legal]
connector = "ironclad"
schedule = "24h"
read_only = true
[sources.legal.settings]
environment = "na1"
client_secret = "${SECRET}"

[sinks.local]
type = "sqlite"
path = "idhost.db"
inputs = ["legal"]
"#;

#[test]
fn valid_config_is_resolved_and_interpolated() {
    let config = parse_with(GOOD, &[("SECRET", "hunter2-long")]).expect("valid");
    assert_eq!(config.sources[0].name, "legal");
    assert_eq!(config.sources[0].settings["client_secret"], "hunter2-long");
    assert_eq!(config.sources[0].secrets, vec!["hunter2-long".to_owned()]);
    assert_eq!(config.plugin_dir, Some(PathBuf::from("plugins")));
    assert_eq!(config.sinks[0].path, Some(PathBuf::from("idhost.db")));
    assert!(config.sinks[0].inputs.includes("legal"));
}

#[test]
fn typo_key_is_rejected_with_line_and_column() {
    let text = GOOD.replace("read_only = true", "raed_only = true");
    let err = parse_with(&text, &[("SECRET", "x")])
        .expect_err("typo")
        .to_string();
    assert!(err.starts_with("idhost.toml:7:1:"), "{err}");
    assert!(err.contains("unknown field `raed_only`"), "{err}");
}

#[test]
fn missing_variable_is_located_at_its_reference() {
    let err = error_of(GOOD);
    assert!(err.starts_with("idhost.toml:10:18:"), "{err}");
    assert_eq!(err.lines().count(), 1, "one problem, one line: {err}");
    assert!(err.contains("`SECRET` is not set"), "{err}");
}

#[test]
fn unknown_sink_type_and_input_are_explained() {
    let text = GOOD.replace("type = \"sqlite\"", "type = \"sqlight\"");
    let err = parse_with(&text, &[("SECRET", "x")])
        .expect_err("bad type")
        .to_string();
    assert!(err.contains("sink type must be one of `sqlite`"), "{err}");
    assert!(err.contains("got `sqlight`"), "{err}");
    let text = GOOD.replace("inputs = [\"legal\"]", "inputs = [\"legl\"]");
    let err = parse_with(&text, &[("SECRET", "x")])
        .expect_err("bad input")
        .to_string();
    assert!(err.contains("input `legl`, which is not a source"), "{err}");
    assert!(err.contains("idhost.toml:15:"), "{err}");
}

#[test]
fn bad_schedule_and_source_name_are_rejected() {
    let text = GOOD.replace("schedule = \"24h\"", "schedule = \"sometimes\"");
    let err = parse_with(&text, &[("SECRET", "x")])
        .expect_err("bad schedule")
        .to_string();
    assert!(err.contains("idhost.toml:6:12:"), "{err}");
    let text = GOOD
        .replace("[sources.legal]", "[sources.Legal]")
        .replace("sources.legal.settings", "sources.Legal.settings");
    let err = parse_with(&text, &[("SECRET", "x")])
        .expect_err("bad name")
        .to_string();
    assert!(err.contains("source name `Legal`"), "{err}");
}

#[test]
fn csv_export_needs_mapping_and_a_mapped_sync_key() {
    let text = format!(
        "{GOOD}\n[sinks.people]\ntype = \"csv\"\npath = \"people.csv\"\nsync_key = \"MAIL\"\n[sinks.people.mapping]\nEMAIL = \"user.emails.primary\"\n"
    );
    let err = parse_with(&text, &[("SECRET", "x")])
        .expect_err("bad key")
        .to_string();
    assert!(
        err.contains("sync_key `MAIL` is not a mapped column; mapped columns are: EMAIL"),
        "{err}"
    );
}

#[test]
fn at_key_finds_a_settings_key() {
    let config = parse_with(GOOD, &[("SECRET", "x")]).expect("valid");
    let located = config
        .text
        .at_key("sources.legal.settings", "environment", "bad");
    assert_eq!((located.line, located.col), (Some(9), Some(1)));
}

#[test]
fn postgres_max_connections_is_checked_and_kept() {
    let pg = GOOD
        .replace("type = \"sqlite\"", "type = \"postgres\"")
        .replace(
            "path = \"idhost.db\"",
            "url = \"postgres://u@127.0.0.1/db\"\nmax_connections = 3",
        );
    let config = parse_with(&pg, &[("SECRET", "x")]).expect("valid");
    assert_eq!(config.sinks[0].max_connections, Some(3));
    let err = parse_with(
        &pg.replace("max_connections = 3", "max_connections = 0"),
        &[("SECRET", "x")],
    )
    .expect_err("zero")
    .to_string();
    assert!(err.contains("idhost.toml:15:19:"), "{err}");
    assert!(
        err.contains("sink `local`: `max_connections` must be between 1 and 1000; got 0"),
        "{err}"
    );
    let err = parse_with(
        &GOOD.replace(
            "path = \"idhost.db\"",
            "path = \"idhost.db\"\nmax_connections = 3",
        ),
        &[("SECRET", "x")],
    )
    .expect_err("not postgres")
    .to_string();
    assert!(
        err.contains("`max_connections` applies to `postgres` sinks only, not `sqlite`"),
        "{err}"
    );
}

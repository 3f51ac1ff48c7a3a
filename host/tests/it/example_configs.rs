//! Every example in config/ is a valid idhost config (variables stand in for credentials).

use std::path::Path;

#[test]
fn every_example_config_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        // Stand-ins shaped like what each variable holds.
        let env = |name: &str| {
            Some(if name.contains("URL") {
                "https://hooks.example.com/idhost".to_owned()
            } else if name.contains("EMAIL") {
                "it-admin@example.com".to_owned()
            } else {
                "12345".to_owned()
            })
        };
        let result = idhost::config::parse(&path, text, &env);
        if let Err(err) = result {
            panic!("{} does not validate:\n{err}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 8, "expected the example configs, found {seen}");
}

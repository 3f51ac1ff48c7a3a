//! The packaging is correct by reading (no container engine here): the Kubernetes manifests
//! parse, agree with each other and with the daemon (probe paths, metrics port, config path,
//! every `${VAR}` of the ConfigMap's idhost.toml provided by the Secret, the TOML valid), and the
//! Dockerfile is multi-stage, non-root, with the plugins where the host looks for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

fn load(name: &str) -> Value {
    let path = repo().join("deploy/kubernetes").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    assert_eq!(docs.len(), 1, "{name}: one document");
    let doc = docs.into_iter().next().unwrap_or(Value::Null);
    for key in ["apiVersion", "kind"] {
        assert!(doc.get(key).is_some(), "{name}: no {key}");
    }
    if doc["kind"] != "Kustomization" {
        assert!(
            doc["metadata"]["name"].as_str().is_some(),
            "{name}: no metadata.name"
        );
    }
    doc
}

use serde::Deserialize as _;

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[*p],
        };
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {cur:?}"))
}

#[test]
fn kubernetes_manifests_parse_and_agree_with_the_daemon() {
    let kustomization = load("kustomization.yaml");
    let listed: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for file in [
        "secret.yaml",
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
    ] {
        assert!(listed.contains(&file), "kustomization misses {file}");
    }

    let secret = load("secret.yaml");
    assert_eq!(s(&secret, &["kind"]), "Secret");
    let secret_env: BTreeMap<String, String> = secret["stringData"]
        .as_mapping()
        .expect("stringData")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap_or("").to_owned(),
                v.as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();

    let configmap = load("configmap.yaml");
    let toml = s(&configmap, &["data", "idhost.toml"]);
    // The config validates with exactly the Secret's variables (a missing one would fail here).
    let config = idhost::config::parse(
        Path::new("/etc/idhost/idhost.toml"),
        toml.to_owned(),
        &|name| secret_env.get(name).cloned(),
    )
    .unwrap_or_else(|e| panic!("the ConfigMap's idhost.toml is invalid:\n{e}"));
    assert!(
        config.coordination.is_some(),
        "replicas need [coordination]"
    );
    assert!(!config.notify.is_empty());
    assert!(
        config.state_path.starts_with("/var/lib/idhost"),
        "state on the writable volume"
    );

    let deployment = load("deployment.yaml");
    let spec = &deployment["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let env: BTreeMap<&str, &str> = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| (s(e, &["name"]), s(e, &["value"])))
        .collect();
    assert_eq!(env["IDHOST_CONFIG"], "/etc/idhost/idhost.toml");
    let listen_port: u16 = env["IDHOST_LISTEN"]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(
        env["IDHOST_LISTEN"].starts_with("0.0.0.0:"),
        "reachable by probes"
    );
    let port = &container["ports"][0];
    assert_eq!(s(port, &["name"]), "metrics");
    assert_eq!(port["containerPort"].as_u64(), Some(u64::from(listen_port)));
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
    ] {
        assert_eq!(s(container, &[probe, "httpGet", "path"]), path, "{probe}");
        assert_eq!(
            s(container, &[probe, "httpGet", "port"]),
            "metrics",
            "{probe}"
        );
    }
    assert_eq!(
        s(&container["envFrom"][0], &["secretRef", "name"]),
        s(&secret, &["metadata", "name"])
    );
    // The config volume is the ConfigMap, mounted where IDHOST_CONFIG points.
    let mounts = container["volumeMounts"].as_sequence().expect("mounts");
    let config_mount = mounts
        .iter()
        .find(|m| s(m, &["mountPath"]) == "/etc/idhost")
        .expect("config mount");
    let volume = spec["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| s(v, &["name"]) == s(config_mount, &["name"]))
        .expect("config volume");
    assert_eq!(
        s(volume, &["configMap", "name"]),
        s(&configmap, &["metadata", "name"])
    );
    assert!(
        mounts
            .iter()
            .any(|m| s(m, &["mountPath"]) == "/var/lib/idhost"),
        "writable state volume"
    );
    // Non-root, and the grace fits inside Kubernetes' termination period.
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let grace: u64 = env["IDHOST_SHUTDOWN_GRACE"]
        .trim_end_matches('s')
        .parse()
        .expect("seconds");
    let termination = spec["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("termination");
    assert!(
        grace + 10 + 5 <= termination,
        "grace {grace}s + abort bound must fit in {termination}s"
    );
    // Pods match the selector, and the Service selects them.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let service = load("service.yaml");
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(s(&service["spec"]["ports"][0], &["targetPort"]), "metrics");
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_ships_plugins_where_the_host_looks() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage");
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("USER");
    assert!(
        !user.contains("root") && !user.ends_with(" 0") && !user.contains(" 0:"),
        "{user}"
    );
    assert!(
        text.contains("/usr/lib/idhost/plugins/"),
        "plugins directory"
    );
    assert!(text.contains("IDHOST_PLUGIN_DIR=/usr/lib/idhost/plugins"));
    for plugin in [
        "libidhost_ironclad.so",
        "libidhost_entra.so",
        "libidhost_clickwrap.so",
    ] {
        assert!(text.contains(plugin), "{plugin} shipped");
    }
    assert!(text.contains("IDHOST_LISTEN=0.0.0.0:9464"));
    assert!(text.contains("EXPOSE 9464"));
    assert!(
        text.contains("--locked"),
        "reproducible dependency versions"
    );
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "no build output in the context"
    );
}

//! Where the build is: the binary and the plugins `cargo build --workspace` put beside each
//! other in the profile directory.

use std::path::PathBuf;

/// The directory holding the built `idhost` binary and the plugins: the profile directory of
/// the running test executable (`target/debug/deps/<test>` → `target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// `target/<profile>/idhost`, or a panic saying how to build it.
pub fn idhost_path() -> PathBuf {
    let path = bin_dir().join(format!("idhost{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (these tests run the built binary and plugins)",
        path.display()
    );
    path
}

/// Path of the plugin library `name` (crate name with underscores, e.g. `idhost_entra`).
pub fn plugin_path(name: &str) -> PathBuf {
    bin_dir().join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Checks that the binary and these plugins are built (e.g. `&["idhost_ironclad"]`).
pub fn require_plugins(names: &[&str]) {
    idhost_path();
    for name in names {
        let path = plugin_path(name);
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --workspace` first (these tests load the real plugins)",
            path.display()
        );
    }
}

/// The plugin directory of a test config: [`bin_dir`], after the one check every test needs
/// (the binary and the fixture plugin are built).
pub fn plugin_dir() -> PathBuf {
    require_plugins(&["fixture_connector"]);
    bin_dir()
}

//! `idhost::config::parse` (TOML, `${VAR}` interpolation, validation) on arbitrary text:
//! it returns Ok or an error, never panics. Variables resolve to a value for short names and
//! are missing otherwise, so both paths of interpolation are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name.len() < 12).then(|| format!("value-of-{name}"));
    if let Err(err) = idhost::config::parse(std::path::Path::new("fuzz.toml"), text.to_owned(), &env) {
        // Error messages are rendered (with their source excerpt) as a user would see them.
        let _ = err.to_string();
    }
});

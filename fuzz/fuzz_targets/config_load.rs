//! `fingate::config::parse` on arbitrary text: never panics; a refusal carries
//! at least one error, and every error displays, naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `${SET_...}` resolves (to a value that is itself a valid duration and
    // size prefix), anything else is unset, so interpolation runs both ways.
    let env = |name: &str| name.starts_with("SET").then(|| "1".to_owned());
    let secrets = fingate::config::Secrets::Production;
    match fingate::config::parse(text, Path::new("fuzz.yaml"), &env, secrets) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without an error");
            for e in &errors.0 {
                let shown = e.to_string();
                assert!(shown.starts_with("fuzz.yaml"), "{shown:?}");
                assert!(!e.message.is_empty(), "{shown:?}");
            }
            let _ = errors.to_string();
        }
    }
});

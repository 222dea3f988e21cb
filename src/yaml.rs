//! Reading one YAML node into a typed value, with errors in the gateway's
//! wording: the full path of the offending key, and what to write instead of
//! serde's Rust type names. Used by every section's validation.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// (path, message) pairs; the caller adds file positions.
pub type Errors = Vec<(String, String)>;

/// Deserializes one node, reporting the full path of any type error below `base`.
pub fn typed<T: DeserializeOwned>(value: Value, base: &str, errors: &mut Errors) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path = match (base.is_empty(), inner.as_str()) {
                (_, ".") => base.to_owned(),
                (true, _) => inner,
                (false, i) if i.starts_with('[') => format!("{base}{i}"),
                (false, i) => format!("{base}.{i}"),
            };
            errors.push((path, plain_message(e.into_inner().to_string())));
            None
        }
    }
}

/// serde names Rust types in its messages (`invalid type: string "many", expected
/// u32`); say what to write instead.
pub fn plain_message(message: String) -> String {
    let wanted = [
        ("u8", format!("from 0 to {}", u8::MAX)),
        ("u16", format!("from 0 to {}", u16::MAX)),
        ("u32", format!("from 0 to {}", u32::MAX)),
        ("u64", "0 or more".to_owned()),
        ("usize", "0 or more".to_owned()),
    ];
    for (rust_type, range) in wanted {
        if let Some(head) = message.strip_suffix(&format!(", expected {rust_type}")) {
            return format!("{head}, expected a whole number {range}");
        }
    }
    message
}

//! `${NAME}` and `${NAME:-default}` in configuration values.
//!
//! Substitution happens on parsed string values, never on the raw text, so an
//! environment value can never inject YAML structure (a secret containing `: ` or a
//! newline stays one string). `$${` writes a literal `${`.

use serde_yaml::Value;

/// One problem found while substituting, with the path of the value.
#[derive(Debug, PartialEq, Eq)]
pub struct InterpolationError {
    pub path: String,
    pub message: String,
}

/// Replaces variables in every string of `value`, collecting every problem.
pub fn interpolate(
    value: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<InterpolationError> {
    let mut errors = Vec::new();
    walk(value, String::new(), env, &mut errors);
    errors
}

fn walk(
    value: &mut Value,
    path: String,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<InterpolationError>,
) {
    match value {
        Value::String(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(message) => errors.push(InterpolationError { path, message }),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                walk(item, child, env, errors);
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, path, env, errors),
        _ => {}
    }
}

/// Expands one string.
pub fn expand(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body_start) = rest.strip_prefix("${") else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(format!(
                "unterminated \"${{\" in {input:?}: expected ${{NAME}} or ${{NAME:-default}}"
            ));
        };
        let body = &body_start[..end];
        rest = &body_start[end + 1..];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_valid_name(name) {
            return Err(format!(
                "invalid variable name {name:?} in {input:?}: use letters, digits and _ (not starting with a digit)"
            ));
        }
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (set it, or write ${{{name}:-default}})"
                ))
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t: {not yaml}".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands() {
        assert_eq!(expand("${SECRET}", &env).unwrap(), "s3cr3t: {not yaml}");
        assert_eq!(expand("a-${EMPTY}-b", &env).unwrap(), "a--b");
        assert_eq!(expand("${NOPE:-redis://x}", &env).unwrap(), "redis://x");
        assert_eq!(expand("${SECRET:-d}", &env).unwrap(), "s3cr3t: {not yaml}");
        assert_eq!(expand("cost $5 $${LIT}", &env).unwrap(), "cost $5 ${LIT}");
    }

    #[test]
    fn refuses() {
        assert!(expand("${NOPE}", &env)
            .unwrap_err()
            .contains("NOPE is not set"));
        assert!(expand("${SECRET", &env)
            .unwrap_err()
            .contains("unterminated"));
        assert!(expand("${1X}", &env)
            .unwrap_err()
            .contains("invalid variable name"));
    }

    #[test]
    fn reports_every_path() {
        let mut v: Value =
            serde_yaml::from_str("a: ${NOPE}\nb: [ok, '${ALSO_NOPE}']\nc: ${SECRET}\n").unwrap();
        let errs = interpolate(&mut v, &env);
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "b[1]"]);
        assert_eq!(v["c"].as_str(), Some("s3cr3t: {not yaml}"));
    }
}

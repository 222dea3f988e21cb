//! Where each node of a YAML document sits in the file, keyed by the same path
//! spelling that error messages use (`routes[3].upstream`).
//!
//! serde gives types but not positions for values that are valid YAML yet wrong for
//! the gateway (an unknown upstream name). A second, event-level parse with yaml-rust2
//! records the line and column of every key and sequence item, so every validation
//! error can point at the exact place to fix.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

/// Path → position of every mapping key and sequence item in a document.
#[derive(Debug, Default)]
pub struct PositionIndex {
    by_path: HashMap<String, Position>,
}

/// A YAML syntax error, or a key given twice in one mapping, with its position.
#[derive(Debug)]
pub struct SyntaxError {
    pub position: Position,
    /// The path of a duplicate key; empty for a syntax error.
    pub path: String,
    pub message: String,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        /// Keys seen so far, with where they were.
        seen: HashMap<String, Position>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    index: HashMap<String, Position>,
    /// The first key given twice in one mapping.
    duplicate: Option<SyntaxError>,
}

fn position(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

impl Builder {
    /// The path of the node that starts now, given the container it sits in.
    /// Records sequence items here; map values were recorded at their key.
    fn child_path(&mut self, mark: Marker) -> String {
        match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { path, key, .. }) => {
                let key = key.take().unwrap_or_default();
                join_key(path, &key)
            }
            Some(Frame::Seq { path, index }) => {
                let child = format!("{path}[{index}]");
                *index += 1;
                self.index.entry(child.clone()).or_insert(position(mark));
                child
            }
        }
    }

    /// True when the next scalar in the current mapping is a key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) if self.expecting_key() => {
                if let Some(Frame::Map { path, key, seen }) = self.stack.last_mut() {
                    let full = join_key(path, &value);
                    let here = position(mark);
                    if let Some(first) = seen.insert(value.clone(), here) {
                        self.duplicate.get_or_insert(SyntaxError {
                            position: here,
                            path: full.clone(),
                            message: format!(
                                "duplicate key (first at line {}, column {})",
                                first.line, first.col
                            ),
                        });
                    }
                    self.index.entry(full).or_insert(here);
                    *key = Some(value);
                }
            }
            Event::Scalar(..) | Event::Alias(..) => {
                self.child_path(mark);
            }
            Event::MappingStart(..) => {
                let path = self.child_path(mark);
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    seen: HashMap::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.child_path(mark);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl PositionIndex {
    /// Indexes `text`; a syntax error is returned with its position.
    pub fn build(text: &str) -> Result<Self, SyntaxError> {
        let mut builder = Builder::default();
        Parser::new_from_str(text)
            .load(&mut builder, false)
            .map_err(|e| SyntaxError {
                position: position(*e.marker()),
                path: String::new(),
                message: e.info().to_owned(),
            })?;
        if let Some(duplicate) = builder.duplicate {
            return Err(duplicate);
        }
        Ok(Self {
            by_path: builder.index,
        })
    }

    /// The position of `path`, or of its nearest ancestor that has one
    /// (a missing key is reported where its parent is).
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(p) = self.by_path.get(current) {
                return Some(*p);
            }
            let cut = current.rfind(['.', '['])?;
            current = &current[..cut];
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DOC: &str = "\
listen:
  - address: 0.0.0.0:8080
routes:
  - name: a
    match: { path: /a }
    upstream: x
  - name: b
    filters:
      - headers:
          request: { set: { X-A: b } }
";

    #[test]
    fn keys_and_items_have_positions() {
        let idx = PositionIndex::build(DOC).unwrap();
        let at = |p: &str| idx.find(p).map(|p| (p.line, p.col));
        assert_eq!(at("listen"), Some((1, 1)));
        assert_eq!(at("listen[0].address"), Some((2, 5)));
        assert_eq!(at("routes[0].upstream"), Some((6, 5)));
        assert_eq!(at("routes[0].match.path"), Some((5, 14)));
        assert_eq!(at("routes[1].filters[0].headers.request"), Some((10, 11)));
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(at("routes[1].filters[0].headers.response"), Some((9, 9)));
        assert_eq!(at("routes[1].nothing"), at("routes[1]"));
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = PositionIndex::build("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1, "{err:?}");
    }
}

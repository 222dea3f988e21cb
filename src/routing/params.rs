//! Captured `{name}` segments of a matched route.

use std::fmt;

/// How many captures fit without touching the heap. Real APIs rarely have
/// more than two or three parameters per path.
const INLINE: usize = 4;

/// A stack of captured values used while walking the trie: the first
/// [`INLINE`] live in an array, the rest spill into a `Vec` (which does not
/// allocate until the fifth push).
#[derive(Clone, Default)]
pub(super) struct Captures<'p> {
    inline: [&'p str; INLINE],
    len: usize,
    spill: Vec<&'p str>,
}

impl<'p> Captures<'p> {
    pub(super) fn push(&mut self, value: &'p str) {
        if self.len < INLINE {
            self.inline[self.len] = value;
        } else {
            self.spill.push(value);
        }
        self.len += 1;
    }

    pub(super) fn pop(&mut self) {
        if self.len > INLINE {
            self.spill.pop();
        }
        self.len = self.len.saturating_sub(1);
    }

    fn get(&self, i: usize) -> Option<&'p str> {
        if i >= self.len {
            None
        } else if i < INLINE {
            self.inline.get(i).copied()
        } else {
            self.spill.get(i - INLINE).copied()
        }
    }
}

/// Captured `{name}` segments: names borrowed from the table (`'t`), values
/// borrowed from the request path (`'p`). Values are the raw segments as they
/// appear in the path (still percent-encoded). No heap allocation for up to
/// four parameters.
#[derive(Clone)]
pub struct Params<'t, 'p> {
    names: &'t [Box<str>],
    values: Captures<'p>,
}

impl<'t, 'p> Params<'t, 'p> {
    /// `names` and `values` are in pattern order and of equal length (the
    /// trie walk captures one value per param segment of the winning route).
    pub(super) fn new(names: &'t [Box<str>], values: Captures<'p>) -> Self {
        Params { names, values }
    }

    /// An empty set, for routes without parameters.
    pub fn empty() -> Params<'static, 'static> {
        Params {
            names: &[],
            values: Captures::default(),
        }
    }

    /// The value captured for `{name}`, if the route has such a parameter.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        let i = self.names.iter().position(|n| &**n == name)?;
        self.values.get(i)
    }

    /// `(name, value)` pairs in pattern order (left to right).
    pub fn iter(&self) -> ParamsIter<'_, 't, 'p> {
        ParamsIter {
            params: self,
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.names.len().min(self.values.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Params<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Iterator returned by [`Params::iter`].
pub struct ParamsIter<'a, 't, 'p> {
    params: &'a Params<'t, 'p>,
    next: usize,
}

impl<'t, 'p> Iterator for ParamsIter<'_, 't, 'p> {
    type Item = (&'t str, &'p str);

    fn next(&mut self) -> Option<Self::Item> {
        let name: &'t str = self.params.names.get(self.next)?;
        let value = self.params.values.get(self.next)?;
        self.next += 1;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.params.len().saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for ParamsIter<'_, '_, '_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_past_inline_capacity_and_pops_back() {
        let names: Vec<Box<str>> = (0..6).map(|i| format!("p{i}").into()).collect();
        let mut c = Captures::default();
        for v in ["a", "b", "c", "d", "e", "f", "g"] {
            c.push(v);
        }
        c.pop();
        let p = Params::new(&names, c);
        assert_eq!(p.len(), 6);
        assert_eq!(p.get("p0"), Some("a"));
        assert_eq!(p.get("p4"), Some("e"));
        assert_eq!(p.get("p5"), Some("f"));
        assert_eq!(p.get("p6"), None);
        let all: Vec<_> = p.iter().collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[5], ("p5", "f"));
        assert_eq!(format!("{p:?}").matches(':').count(), 6);
        assert!(Params::empty().is_empty());
    }
}

//! The per-host segment trie.
//!
//! Built mutably with hash maps ([`Builder`]), then frozen into [`Node`]s:
//! literal children in a sorted slice (scanned linearly while small, indexed
//! by a hash map when wide), plus the per-node summaries that prune the
//! walk (depth bitmask, prefix-below flag).

use std::collections::HashMap;

use http::Method;

use super::fxhash::FxBuildHasher;
use super::params::Captures;
use super::pattern::Segment;

/// A route attached to a trie node. Method lists live here, not in the
/// table, so that lookup touches only the nodes it walks.
#[derive(Debug)]
pub(super) struct Entry {
    /// Index of the route in the list given to `RouteTable::build`.
    pub id: usize,
    /// `None` = all methods; otherwise non-empty and deduplicated.
    pub methods: Option<Box<[Method]>>,
}

#[derive(Default)]
pub(super) struct Builder {
    literals: HashMap<Box<str>, Builder>,
    param: Option<Box<Builder>>,
    exact: Vec<Entry>,
    prefix: Vec<Entry>,
}

impl Builder {
    /// The entry list of the node for `segments`, created if missing. Exact
    /// and prefix routes ending at the same node are kept apart because they
    /// never conflict and are searched differently.
    pub fn slot(&mut self, segments: &[Segment], is_prefix: bool) -> &mut Vec<Entry> {
        let mut node = self;
        for seg in segments {
            node = match seg {
                Segment::Literal(lit) => node.literals.entry(lit.clone()).or_default(),
                // `{a}` and `{b}` at the same position share one child: they
                // are the same pattern, names are looked up per route.
                Segment::Param(_) => node.param.get_or_insert_with(Default::default),
            };
        }
        if is_prefix {
            &mut node.prefix
        } else {
            &mut node.exact
        }
    }

    pub fn freeze(mut self) -> Node {
        // Explicit-HEAD routes first: see `pick`. Stable, so otherwise the
        // order of the file is kept (it only shows in `iter_resolved`).
        self.exact.sort_by_key(|e| !lists_head(e));
        self.prefix.sort_by_key(|e| !lists_head(e));
        let mut sorted: Vec<(Box<str>, Node)> = self
            .literals
            .into_iter()
            .map(|(k, b)| (k, b.freeze()))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let param = self.param.map(|b| Box::new(b.freeze()));
        let mut depths = u64::from(!self.exact.is_empty());
        let mut prefix_below = !self.prefix.is_empty();
        for child in sorted.iter().map(|(_, n)| n).chain(param.as_deref()) {
            // Shift by one level; depths of 63 and more share the top bit.
            depths |= (child.depths << 1) | (child.depths & TOP_BIT);
            prefix_below |= child.prefix_below;
        }
        let index = (sorted.len() > LINEAR_MAX).then(|| {
            let pairs = sorted.iter().enumerate().map(|(i, (k, _))| (k.clone(), i));
            pairs.collect()
        });
        Node {
            literals: Literals {
                sorted: sorted.into_boxed_slice(),
                index,
            },
            param,
            exact: self.exact.into_boxed_slice(),
            prefix: self.prefix.into_boxed_slice(),
            depths,
            prefix_below,
        }
    }
}

/// Up to this many literal children are scanned linearly: comparing a few
/// short strings (length first) is cheaper than hashing the segment.
const LINEAR_MAX: usize = 8;

/// Children by literal segment, sorted (for a deterministic
/// `iter_resolved`); wide nodes (e.g. 10,000 services under `/api`) also get
/// a hash index so lookup stays O(1) in the fan-out.
struct Literals {
    sorted: Box<[(Box<str>, Node)]>,
    index: Option<HashMap<Box<str>, usize, FxBuildHasher>>,
}

impl Literals {
    fn get(&self, seg: &str) -> Option<&Node> {
        let found = match &self.index {
            Some(index) => self.sorted.get(*index.get(seg)?),
            None => self.sorted.iter().find(|(k, _)| **k == *seg),
        };
        found.map(|(_, node)| node)
    }

    fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.sorted.iter().map(|(_, node)| node)
    }
}

const TOP_BIT: u64 = 1 << 63;

pub(super) struct Node {
    literals: Literals,
    param: Option<Box<Node>>,
    /// Exact routes whose pattern ends here.
    exact: Box<[Entry]>,
    /// Prefix routes rooted here.
    prefix: Box<[Entry]>,
    /// Bit `r` set = this subtree has an exact route exactly `r` segments
    /// below this node (bit 63: 63 or more), so a walk with `r` segments
    /// left skips subtrees that cannot end in a match.
    depths: u64,
    /// Whether this node or a descendant has prefix routes: the prefix walk
    /// stops as soon as nothing below can match.
    prefix_below: bool,
}

/// Splits the next segment off a path with the leading '/' already removed.
/// (A plain byte scan: segments are short, so this beats `memchr` set-up.)
fn next_segment(rest: &str) -> (&str, &str) {
    match rest.bytes().position(|b| b == b'/') {
        // '/' is ASCII, so both sides are on char boundaries.
        Some(i) => (
            rest.get(..i).unwrap_or(rest),
            rest.get(i + 1..).unwrap_or(""),
        ),
        None => (rest, ""),
    }
}

/// The first route in `entries` accepting `method`; a route allowing `GET`
/// also serves `HEAD`. At most one entry lists a method explicitly (overlaps
/// are rejected at build time) and `freeze` puts explicit-`HEAD` routes
/// first, so an explicit `HEAD` route beats a `GET` route for `HEAD`.
fn pick(entries: &[Entry], method: &Method) -> Option<usize> {
    let accepts = |e: &&Entry| match &e.methods {
        None => true,
        Some(list) => {
            list.contains(method) || (*method == Method::HEAD && list.contains(&Method::GET))
        }
    };
    entries.iter().find(accepts).map(|e| e.id)
}

fn lists_head(e: &Entry) -> bool {
    e.methods
        .as_deref()
        .is_some_and(|m| m.contains(&Method::HEAD))
}

impl Node {
    fn literal(&self, seg: &str) -> Option<&Node> {
        self.literals.get(seg)
    }

    fn has_depth(&self, remaining: usize) -> bool {
        self.depths & (1u64 << remaining.min(63)) != 0
    }

    /// Finds the most specific route for a path given as `rest` (leading and
    /// trailing '/' removed) with `count` segments. Sets `*path_matched` if
    /// some route matched the path but not the method.
    pub fn find<'p>(
        &self,
        rest: &'p str,
        count: usize,
        method: &Method,
        path_matched: &mut bool,
    ) -> Option<(usize, Captures<'p>)> {
        let mut caps = Captures::default();
        if self.has_depth(count) {
            if let Some(id) = self.find_exact(rest, count, method, &mut caps, path_matched) {
                return Some((id, caps));
            }
        }
        self.find_prefix(rest, method, path_matched)
            .map(|id| (id, Captures::default()))
    }

    /// Depth-first, literal child before param child: the first exact route
    /// reached is the one with a literal at the left-most differing segment.
    fn find_exact<'p>(
        &self,
        rest: &'p str,
        remaining: usize,
        method: &Method,
        caps: &mut Captures<'p>,
        path_matched: &mut bool,
    ) -> Option<usize> {
        if remaining == 0 {
            let found = pick(&self.exact, method);
            *path_matched |= found.is_none() && !self.exact.is_empty();
            return found;
        }
        let (seg, tail) = next_segment(rest);
        let left = remaining - 1;
        if let Some(child) = self.literal(seg).filter(|c| c.has_depth(left)) {
            if let Some(id) = child.find_exact(tail, left, method, caps, path_matched) {
                return Some(id);
            }
        }
        // A parameter matches exactly one non-empty segment.
        if let Some(child) = self.param.as_deref().filter(|c| c.has_depth(left)) {
            if !seg.is_empty() {
                caps.push(seg);
                if let Some(id) = child.find_exact(tail, left, method, caps, path_matched) {
                    return Some(id);
                }
                caps.pop();
            }
        }
        None
    }

    /// Walks literal children only (prefixes have no params); the deepest
    /// prefix accepting the method wins.
    fn find_prefix(
        &self,
        mut rest: &str,
        method: &Method,
        path_matched: &mut bool,
    ) -> Option<usize> {
        let mut node = self;
        let mut best = None;
        while node.prefix_below {
            if !node.prefix.is_empty() {
                match pick(&node.prefix, method) {
                    Some(id) => best = Some(id),
                    None => *path_matched = true,
                }
            }
            if rest.is_empty() {
                return best;
            }
            let (seg, tail) = next_segment(rest);
            match node.literal(seg) {
                Some(child) => (node, rest) = (child, tail),
                None => return best,
            }
        }
        best
    }

    /// Adds the explicit methods of every route matching the path to
    /// `allow` (the slow path of a 405, so allocation is fine here).
    pub fn collect_allow(&self, rest: &str, count: usize, allow: &mut Vec<Method>) {
        self.collect_exact(rest, count, allow);
        let mut node = self;
        let mut rest = rest;
        loop {
            extend_methods(&node.prefix, allow);
            if rest.is_empty() {
                return;
            }
            let (seg, tail) = next_segment(rest);
            match node.literal(seg) {
                Some(child) => (node, rest) = (child, tail),
                None => return,
            }
        }
    }

    fn collect_exact(&self, rest: &str, remaining: usize, allow: &mut Vec<Method>) {
        if !self.has_depth(remaining) {
            return;
        }
        if remaining == 0 {
            extend_methods(&self.exact, allow);
            return;
        }
        let (seg, tail) = next_segment(rest);
        if let Some(child) = self.literal(seg) {
            child.collect_exact(tail, remaining - 1, allow);
        }
        if let Some(child) = self.param.as_deref().filter(|_| !seg.is_empty()) {
            child.collect_exact(tail, remaining - 1, allow);
        }
    }

    /// Appends route ids in resolution order: exact routes depth-first with
    /// literal children before the param child (pre-order), then prefix
    /// routes with children before parents (longer prefixes first). For any
    /// request, the route `find` returns is the first one in this order that
    /// matches path and method.
    pub fn resolution_order(&self, out: &mut Vec<usize>) {
        self.exact_preorder(out);
        self.prefix_postorder(out);
    }

    fn children(&self) -> impl Iterator<Item = &Node> {
        self.literals.nodes().chain(self.param.as_deref())
    }

    fn exact_preorder(&self, out: &mut Vec<usize>) {
        out.extend(self.exact.iter().map(|e| e.id));
        for child in self.children() {
            child.exact_preorder(out);
        }
    }

    fn prefix_postorder(&self, out: &mut Vec<usize>) {
        for child in self.children() {
            child.prefix_postorder(out);
        }
        out.extend(self.prefix.iter().map(|e| e.id));
    }
}

fn extend_methods(entries: &[Entry], allow: &mut Vec<Method>) {
    for methods in entries.iter().filter_map(|e| e.methods.as_deref()) {
        allow.extend(methods.iter().cloned());
    }
}

//! The observer filter language, from the official `iii-filter` crate (the crate the engine
//! evaluates filters with, pinned to the same version), so that this SDK and the engine agree
//! on every filter and every document by construction. Nothing here re-implements the
//! language: this module only names how the SDK compiles a filter and which roots it reads.
//!
//! A filter is evaluated against the observed envelope `{input?, output?, error?, caller?,
//! metadata?}`: a missing root is absent, `null` is a value.

use serde_json::Value;

pub use iii_filter::{limits, Doc, ErrorCode, Filter, FilterError, Roots};

/// The document roots, in the order the envelope lists them.
pub const ROOTS: [&str; 5] = ["input", "output", "error", "caller", "metadata"];

/// Validates, normalizes and compiles a filter. `trusted`: the filter was already validated
/// by the engine (the normal form it sends to a function's owner), so the encoded-size limit,
/// which applies to the filter as written, is skipped; every other rule still applies.
pub fn compile(src: &Value, trusted: bool) -> Result<Filter, FilterError> {
    if trusted {
        Filter::from_normalized(src)
    } else {
        Filter::parse(src)
    }
}

/// Whether `roots` includes the root named `name` (one of [`ROOTS`]).
pub fn has_root(roots: Roots, name: &str) -> bool {
    match name {
        "input" => roots.input,
        "output" => roots.output,
        "error" => roots.error,
        "caller" => roots.caller,
        "metadata" => roots.metadata,
        _ => false,
    }
}

/// The names of the roots a filter references, in [`ROOTS`] order.
pub fn root_names(roots: Roots) -> impl Iterator<Item = &'static str> {
    ROOTS.into_iter().filter(move |name| has_root(roots, name))
}

/// The parts of a document a filter can read: an SDK converts only these from its host values.
///
/// Built from the normal form: every clause path (`input.a.b`, under any `$and` / `$or` /
/// `$not`) needs the whole value at that path (an operator such as `$eq` on an object or
/// `$any` reads all of it); everything beside the paths is never read. Evaluating the filter
/// on a document cut down to its projection ([`Need::project`]) gives the same answer as on the
/// whole document.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Need {
    /// The whole value is read.
    pub full: bool,
    /// Otherwise, only these members (object keys, or canonical array indexes) are.
    pub children: std::collections::BTreeMap<String, Need>,
}

impl Need {
    fn add(&mut self, segments: &[String]) {
        if self.full {
            return;
        }
        match segments.split_first() {
            None => {
                self.full = true;
                self.children.clear();
            }
            Some((first, rest)) => self.children.entry(first.clone()).or_default().add(rest),
        }
    }

    /// Reads at least what `other` reads too.
    pub fn merge(&mut self, other: &Need) {
        if self.full {
            return;
        }
        if other.full {
            self.full = true;
            self.children.clear();
            return;
        }
        for (name, need) in &other.children {
            self.children.entry(name.clone()).or_default().merge(need);
        }
    }

    /// The array index a member name selects: canonical decimals only (`0`, `[1-9][0-9]*`).
    pub fn index(name: &str) -> Option<usize> {
        let canonical = name == "0" || (!name.starts_with('0') && name.bytes().all(|b| b.is_ascii_digit()));
        if canonical && !name.is_empty() && name.len() <= 15 {
            name.parse().ok()
        } else {
            None
        }
    }

    /// The largest array index among the children, if any.
    pub fn max_index(&self) -> Option<usize> {
        self.children.keys().filter_map(|k| Need::index(k)).max()
    }

    /// `value` cut down to what this need reads (members beside the paths are left out,
    /// array elements beside them are `null`).
    pub fn project(&self, value: &Value) -> Value {
        if self.full {
            return value.clone();
        }
        match value {
            Value::Object(map) => Value::Object(
                self.children
                    .iter()
                    .filter_map(|(k, need)| map.get(k).map(|v| (k.clone(), need.project(v))))
                    .collect(),
            ),
            Value::Array(items) => {
                let end = self.max_index().map_or(0, |i| (i + 1).min(items.len()));
                let mut out = vec![Value::Null; end];
                for (k, need) in &self.children {
                    if let Some(i) = Need::index(k).filter(|i| *i < end) {
                        out[i] = need.project(&items[i]);
                    }
                }
                Value::Array(out)
            }
            scalar => scalar.clone(),
        }
    }
}

/// What a filter reads of each root ([`ROOTS`] order); `None`: the root is not read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Projection {
    pub roots: [Option<Need>; 5],
}

impl Projection {
    /// The projection of a compiled filter, from its normal form.
    pub fn of(filter: &Filter) -> Projection {
        let mut projection = Projection::default();
        projection.collect(filter.normalized());
        projection
    }

    /// What either projection reads (the document several filters are evaluated on).
    pub fn merge(&mut self, other: &Projection) {
        for (mine, theirs) in self.roots.iter_mut().zip(&other.roots) {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(Need::default).merge(theirs);
            }
        }
    }

    fn collect(&mut self, filter: &Value) {
        let Value::Object(clauses) = filter else { return };
        for (key, operand) in clauses {
            match key.as_str() {
                "$and" | "$or" => {
                    for item in operand.as_array().into_iter().flatten() {
                        self.collect(item);
                    }
                }
                "$not" => self.collect(operand),
                _ if key.starts_with('$') => {}
                path => {
                    let segments = split_path(path);
                    if let Some(slot) = ROOTS.iter().position(|r| *r == segments[0]) {
                        self.roots[slot].get_or_insert_with(Need::default).add(&segments[1..]);
                    }
                }
            }
        }
    }
}

/// The segments of a (validated) path: split on `.`, with `\.` and `\\` unescaped.
fn split_path(path: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => segments.last_mut().expect("one segment").extend(chars.next()),
            '.' => segments.push(String::new()),
            c => segments.last_mut().expect("one segment").push(c),
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(src: Value) -> Filter {
        compile(&src, false).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn error(src: Value) -> FilterError {
        compile(&src, false).expect_err("the filter is invalid")
    }

    #[test]
    fn filter_evaluates_input_output_error_and_caller() {
        let f = filter(json!({
            "input.amount": {"$gte": 500},
            "output.charged": {"$exists": true},
            "caller.worker_name": {"$prefix": "checkout-"},
        }));
        let hit = json!({
            "input": {"amount": 900},
            "output": {"charged": 900},
            "caller": {"worker_name": "checkout-1"},
        });
        assert!(f.matches_value(&hit));
        let small = json!({"input": {"amount": 1}, "output": {"charged": 1}, "caller": {"worker_name": "checkout-1"}});
        assert!(!f.matches_value(&small));
        let other_worker =
            json!({"input": {"amount": 900}, "output": {}, "caller": {"worker_name": "checkout-1"}});
        assert!(!f.matches_value(&other_worker));

        let on_error = filter(json!({"error.code": {"$in": ["CARD_DECLINED", "TIMEOUT"]}}));
        assert!(on_error.matches_value(&json!({"error": {"code": "CARD_DECLINED", "message": "no"}})));
        assert!(!on_error.matches_value(&json!({"output": {"code": "CARD_DECLINED"}})));
        assert!(!on_error.matches(&Doc::default()));
    }

    #[test]
    fn filter_absent_is_not_null() {
        let ne = filter(json!({"input.a": {"$ne": 1}}));
        assert!(ne.matches_value(&json!({})));
        let exists = filter(json!({"input.a": {"$exists": true}}));
        assert!(exists.matches_value(&json!({"input": {"a": null}})));
        assert!(!exists.matches_value(&json!({"input": {}})));
        let doc_null = Value::Null;
        let eq_null = filter(json!({"output": {"$eq": null}}));
        assert!(eq_null.matches(&Doc { output: Some(&doc_null), ..Doc::default() }));
        assert!(!eq_null.matches(&Doc::default()));
    }

    #[test]
    fn filter_match_all_and_roots() {
        let all = filter(json!({}));
        assert!(all.is_match_all());
        assert_eq!(root_names(all.roots()).count(), 0);
        let f =
            filter(json!({"$or": [{"caller.worker_name": {"$eq": "a"}}, {"metadata.k": {"$exists": true}}]}));
        assert_eq!(root_names(f.roots()).collect::<Vec<_>>(), ["caller", "metadata"]);
        assert!(has_root(f.roots(), "caller") && !has_root(f.roots(), "input") && !has_root(f.roots(), "@"));
    }

    #[test]
    fn filter_errors_are_invalid_filter() {
        for (src, message) in [
            (json!({"input.op": "insert"}), "`input.op`: expected an operator object"),
            (json!({"bogus.x": {"$eq": 1}}), "unknown root `bogus`"),
            (json!({"input.a": {"$regex": "x"}}), "unknown operator `$regex`"),
            (json!({"$or": []}), "non-empty array"),
            (json!([1]), "a filter must be a JSON object"),
        ] {
            let err = error(src.clone());
            assert_eq!(err.code, ErrorCode::InvalidFilter, "{src}");
            assert!(err.message.contains(message), "{src}: {}", err.message);
        }
    }

    #[test]
    fn filter_trusted_skips_only_the_size_limit() {
        let mut big = serde_json::Map::new();
        for i in 0..40 {
            big.insert(format!("input.k{i:02}"), json!({"$eq": "v".repeat(200)}));
        }
        let big = Value::Object(big);
        assert!(error(big.clone()).message.contains("encodes to more than"));
        assert!(compile(&big, true).is_ok());
        assert!(compile(&json!({"input.op": "insert"}), true).is_err());
    }

    #[test]
    fn filter_projection_reads_only_the_paths() {
        let f = filter(json!({
            "input.a\\.b.1": {"$eq": 1},
            "$or": [{"caller.worker_name": {"$prefix": "x"}}, {"$not": {"input.c": {"$exists": true}}}],
            "input.items": {"$any": {"@.sku": {"$eq": "a"}}},
        }));
        let p = Projection::of(&f);
        assert!(p.roots[1].is_none() && p.roots[2].is_none() && p.roots[4].is_none());
        let input = p.roots[0].as_ref().unwrap();
        assert_eq!(input.children.keys().collect::<Vec<_>>(), ["a.b", "c", "items"]);
        assert!(input.children["items"].full && input.children["c"].full);
        assert!(input.children["a.b"].children["1"].full);
        let doc = json!({"a.b": [0, 1, 2], "c": {"deep": [1]}, "items": [{"sku": "a", "x": 1}], "big": "x"});
        assert_eq!(
            input.project(&doc),
            json!({"a.b": [null, 1], "c": {"deep": [1]}, "items": [{"sku": "a", "x": 1}]})
        );
        assert_eq!(Need::index("0"), Some(0));
        assert_eq!(Need::index("10"), Some(10));
        for bad in ["", "01", "+1", "1a", "9999999999999999"] {
            assert_eq!(Need::index(bad), None, "{bad}");
        }
        assert!(Projection::of(&filter(json!({"input": {"$exists": true}}))).roots[0].as_ref().unwrap().full);
        assert_eq!(Projection::of(&filter(json!({}))), Projection::default());
    }

    #[test]
    fn merged_projections_read_what_either_filter_reads() {
        let mut p =
            Projection::of(&filter(json!({"input.a.x": {"$eq": 1}, "caller.worker_name": {"$eq": "w"}})));
        p.merge(&Projection::of(&filter(json!({"input.a": {"$exists": true}, "input.b.y": {"$eq": 2}}))));
        p.merge(&Projection::default());
        let input = p.roots[0].as_ref().unwrap();
        assert!(input.children["a"].full && input.children["a"].children.is_empty(), "the whole of a");
        assert!(input.children["b"].children["y"].full);
        assert!(p.roots[3].as_ref().unwrap().children["worker_name"].full);
        assert!(p.roots[1].is_none() && p.roots[4].is_none());
        let doc = json!({"a": {"x": 1, "z": 2}, "b": {"y": 2, "w": 3}, "c": 4});
        assert_eq!(input.project(&doc), json!({"a": {"x": 1, "z": 2}, "b": {"y": 2}}));
    }

    #[test]
    fn filter_on_a_projection_answers_as_on_the_whole_document() {
        let filters = [
            json!({"input.a": {"$eq": {"k": [1, 2]}}}),
            json!({"input.a.k.1": {"$eq": 2}, "input.b": {"$ne": null}}),
            json!({"input.a.k": {"$any": {"$gt": 1}}}),
            json!({"input.l.0.x": {"$exists": true}, "input.l.2": {"$exists": false}}),
            json!({"$or": [{"input.s": {"$prefix": "ab"}}, {"$not": {"output.x": {"$in": [1, "a"]}}}]}),
            json!({"caller.worker_name": {"$eq": "w"}, "metadata.t": {"$exists": true}, "error": {"$eq": null}}),
            json!({"input.l": {"$any": {"@.x": {"$eq": 1}}}}),
            json!({"input.a.k.01": {"$exists": true}}),
        ];
        let docs = [
            json!({}),
            json!({"input": {"a": {"k": [1, 2]}, "b": 1, "s": "abc", "l": [{"x": 1}, 2]}, "output": {"x": 1}}),
            json!({"input": {"a": {"k": [1, 2], "j": 0}, "l": [{"y": 1}, 2, 3]}, "output": {"x": 2}}),
            json!({"input": {"a": "k", "l": "str"}, "caller": {"worker_name": "w"}, "metadata": {"t": 1}, "error": null}),
            json!({"input": [1, 2], "output": null, "error": {"code": "E"}}),
        ];
        for f in &filters {
            let f = filter(f.clone());
            let p = Projection::of(&f);
            for doc in &docs {
                let mut cut = serde_json::Map::new();
                for (need, name) in p.roots.iter().zip(ROOTS) {
                    if let (Some(need), Some(v)) = (need, doc.get(name)) {
                        cut.insert(name.to_owned(), need.project(v));
                    }
                }
                assert_eq!(f.matches_value(&Value::Object(cut)), f.matches_value(doc), "{f} on {doc}");
            }
        }
    }

    #[test]
    fn filter_is_shared_across_threads() {
        let f = filter(json!({"input.n": {"$gt": 10}}));
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    (0..1000).filter(|n| f.matches_value(&json!({"input": {"n": n + t}}))).count()
                })
            })
            .collect();
        let counts: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(counts, [989, 990]);
    }
}

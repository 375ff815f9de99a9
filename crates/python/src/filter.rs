//! `_iii.Filter`: an observer filter compiled by the official `iii-filter` crate (through
//! `iii_core::filter`), evaluated in Rust. `iii.filter.CompiledFilter` wraps it.
//!
//! Two conversions of Python values into `serde_json::Value` live here, because neither is the
//! payload encoder's (`json::to_json`), which writes text and raises on what it cannot encode:
//!
//! * the filter itself, strictly: only what JSON carries as it is (dicts with `str` keys,
//!   lists / tuples, strings, finite numbers within ±2^53, booleans, `None`). Anything else is
//!   `INVALID_FILTER`, with the messages of the official `iii.filter` (coercing it could turn
//!   a filter into one that matches more);
//! * the document, tolerantly, and only the parts the filter's paths reach (`Projection`): a
//!   value JSON cannot encode is absent (`null` inside an array), a number no double holds and
//!   a non-finite float are `null`, and other objects are read through their JSON form
//!   (`iii._filter._json_view`), as the official evaluator sees them. Evaluation never raises.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use iii_core::filter::{self as core_filter, Doc, Filter as CoreFilter, Need, Projection};

const MAX_SAFE_INTEGER: i64 = 1 << 53;
/// The official checks count at most this many values before giving up on a filter.
const MAX_ENCODED_BYTES: usize = core_filter::limits::MAX_ENCODED_BYTES;
const MAX_JSON_DEPTH: usize = core_filter::limits::MAX_JSON_DEPTH;
/// Documents: arrays / objects nested deeper than this are absent (far beyond anything a
/// filter reaches: 8 levels of `$any` with 16 segments each, then a 32-level literal).
const MAX_DOC_DEPTH: usize = 256;

struct PyHelpers {
    filter_error: Py<PyAny>,
    json_view: Py<PyAny>,
    absent: Py<PyAny>,
}

static HELPERS: PyOnceLock<PyHelpers> = PyOnceLock::new();

fn helpers(py: Python<'_>) -> PyResult<&PyHelpers> {
    HELPERS.get_or_try_init(py, || {
        let module = py.import("iii._filter")?;
        Ok::<_, PyErr>(PyHelpers {
            filter_error: module.getattr("FilterError")?.unbind(),
            json_view: module.getattr("_json_view")?.unbind(),
            absent: module.getattr("ABSENT")?.unbind(),
        })
    })
}

fn filter_error<'py>(py: Python<'py>, code: &str, message: impl IntoPyObject<'py>) -> PyErr {
    match helpers(py).and_then(|h| h.filter_error.bind(py).call1((code, message))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// The filter: strict conversion (the official `check_json`).

enum Strict {
    /// `INVALID_FILTER` with this message.
    Invalid(String),
    /// `INVALID_FILTER` with a message that is not valid UTF-8 (it names a lone surrogate).
    InvalidPy(Py<PyAny>),
    /// A Python error while reading the value (a failing `__str__`, ...).
    Py(PyErr),
}

impl From<PyErr> for Strict {
    fn from(e: PyErr) -> Self {
        Strict::Py(e)
    }
}

fn where_(at: &str) -> String {
    if at.is_empty() {
        "the filter".to_owned()
    } else {
        format!("`{at}`")
    }
}

/// `_kind` of the official package: how a top-level filter that is not an object is named.
fn kind(obj: &Bound<'_, PyAny>) -> &'static str {
    if obj.is_none() {
        "null"
    } else if obj.is_instance_of::<PyList>() {
        "an array"
    } else if obj.is_instance_of::<PyBool>() {
        "a boolean"
    } else if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() {
        "a number"
    } else if obj.is_instance_of::<PyString>() {
        "a string"
    } else {
        "an object"
    }
}

struct StrictWalk {
    visited: usize,
}

impl StrictWalk {
    fn string(&self, s: &Bound<'_, PyString>, at: &str, what: &str) -> Result<String, Strict> {
        match s.to_str() {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(Strict::Invalid(format!(
                "{}: {what} holds a lone UTF-16 surrogate, which is not valid Unicode",
                where_(at)
            ))),
        }
    }

    /// The official walk pops the last pushed value first: children are visited last to first,
    /// depth first, and a dict's keys are all checked before any of its members.
    fn value(&mut self, obj: &Bound<'_, PyAny>, at: &str, level: usize) -> Result<Value, Strict> {
        self.visited += 1;
        if self.visited > MAX_ENCODED_BYTES {
            return Err(Strict::Invalid(format!(
                "the filter encodes to more than {MAX_ENCODED_BYTES} bytes"
            )));
        }
        if obj.is_none() {
            return Ok(Value::Null);
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Value::Bool(b.is_true()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Value::String(self.string(s, at, "a string")?));
        }
        if let Ok(i) = obj.cast::<PyInt>() {
            return match i.extract::<i64>() {
                Ok(v) if v.abs() <= MAX_SAFE_INTEGER => Ok(Value::from(v)),
                _ => Err(Strict::Invalid(format!(
                    "{}: the number {} is outside ±2^53",
                    where_(at),
                    obj.str()?
                ))),
            };
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let v = f.value();
            if !v.is_finite() {
                return Err(Strict::Invalid(format!("{}: {} is not a JSON number", where_(at), obj.str()?)));
            }
            if v.abs() > MAX_SAFE_INTEGER as f64 {
                return Err(Strict::Invalid(format!(
                    "{}: the number {} is outside ±2^53",
                    where_(at),
                    obj.str()?
                )));
            }
            return Ok(Number::from_f64(v).map_or(Value::Null, Value::Number));
        }
        let is_seq = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
        let dict = obj.cast::<PyDict>().ok();
        if (is_seq || dict.is_some()) && level > MAX_JSON_DEPTH {
            return Err(Strict::Invalid(format!(
                "the filter nests more than {MAX_JSON_DEPTH} arrays / objects"
            )));
        }
        if is_seq {
            let items: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
            let mut out = vec![Value::Null; items.len()];
            for (i, item) in items.iter().enumerate().rev() {
                out[i] = self.value(item, &format!("{at}[{i}]"), level + 1)?;
            }
            return Ok(Value::Array(out));
        }
        if let Some(dict) = dict {
            let mut members = Vec::with_capacity(dict.len());
            for (key, member) in dict.iter() {
                let Ok(key) = key.cast::<PyString>() else {
                    return Err(Strict::Invalid(format!(
                        "{}: the key {} is not a string",
                        where_(at),
                        key.repr()?
                    )));
                };
                let Ok(text) = key.to_str() else {
                    // The message names the key as it is, lone surrogate included.
                    let message = PyString::new(
                        obj.py(),
                        "`{}`: the key holds a lone UTF-16 surrogate, which is not valid Unicode",
                    );
                    let path = if at.is_empty() {
                        key.clone().into_any()
                    } else {
                        PyString::new(obj.py(), &format!("{at}.")).add(key)?
                    };
                    return Err(Strict::InvalidPy(message.call_method1("format", (path,))?.unbind()));
                };
                let path = if at.is_empty() { text.to_owned() } else { format!("{at}.{text}") };
                members.push((text.to_owned(), path, member));
            }
            let mut map = Map::new();
            for (key, path, member) in members.iter().rev() {
                let value = self.value(member, path, level + 1)?;
                map.insert(key.clone(), value);
            }
            return Ok(Value::Object(map));
        }
        let type_name = obj.get_type().name()?;
        Err(Strict::Invalid(format!("{}: a {type_name} is not JSON", where_(at))))
    }
}

fn filter_source(src: &Bound<'_, PyAny>) -> Result<Value, Strict> {
    if !src.is_instance_of::<PyDict>() {
        return Err(Strict::Invalid(format!("a filter must be a JSON object, found {}", kind(src))));
    }
    StrictWalk { visited: 0 }.value(src, "", 1)
}

// ---------------------------------------------------------------------------------------------
// The document: tolerant conversion (the official `json_view`, applied eagerly).

pub(crate) struct DocWalk<'py> {
    pub(crate) py: Python<'py>,
    /// The containers on the current path: a container inside itself is absent.
    pub(crate) open: Vec<usize>,
}

impl<'py> DocWalk<'py> {
    /// `Ok(None)`: absent (JSON cannot encode the value).
    fn value(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<Option<Value>> {
        if obj.is_none() {
            return Ok(Some(Value::Null));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Some(Value::String(s.to_string_lossy().into_owned())));
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Some(Value::Bool(b.is_true())));
        }
        if let Ok(i) = obj.cast::<PyInt>() {
            if let Ok(v) = i.extract::<i64>() {
                return Ok(Some(Value::from(v)));
            }
            if let Ok(v) = i.extract::<u64>() {
                return Ok(Some(Value::from(v)));
            }
            // Beyond 64 bits: the double a JSON parser reads it as; `null` when none holds it.
            let v: f64 = obj.extract().unwrap_or(f64::INFINITY);
            return Ok(Some(Number::from_f64(v).map_or(Value::Null, Value::Number)));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(Some(Number::from_f64(f.value()).map_or(Value::Null, Value::Number)));
        }
        let is_seq = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
        let dict = obj.cast::<PyDict>().ok();
        if !is_seq && dict.is_none() {
            return self.other(obj);
        }
        let id = obj.as_ptr() as usize;
        if self.open.len() >= MAX_DOC_DEPTH || self.open.contains(&id) {
            return Ok(None);
        }
        self.open.push(id);
        let out = if let Some(dict) = dict { self.object(dict) } else { self.array(obj) };
        self.open.pop();
        out.map(Some)
    }

    fn array(&mut self, seq: &Bound<'py, PyAny>) -> PyResult<Value> {
        let mut out = Vec::with_capacity(seq.len().unwrap_or(0));
        for item in seq.try_iter()? {
            out.push(self.value(&item?)?.unwrap_or(Value::Null));
        }
        Ok(Value::Array(out))
    }

    fn object(&mut self, dict: &Bound<'py, PyDict>) -> PyResult<Value> {
        let mut map = Map::new();
        for (key, member) in dict.iter() {
            let Some(key) = json_key(&key)? else { continue };
            // Keys that collide in JSON are one member: the last inserted, also when JSON drops it.
            match self.value(&member)? {
                Some(value) => {
                    map.insert(key, value);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(Value::Object(map))
    }

    /// `obj` cut down to what `need` reads (`Need::project`): only the members on the
    /// filter's paths are converted, so the cost follows the filter, not the document.
    pub(crate) fn projected(&mut self, obj: &Bound<'py, PyAny>, need: &Need) -> PyResult<Option<Value>> {
        if need.full {
            return self.value(obj);
        }
        if let Ok(dict) = obj.cast::<PyDict>() {
            let mut map = Map::new();
            // A name no other key type writes as is looked up directly; the others are found
            // by scanning every key's JSON form (`1` and `"1"` are one member: the last wins).
            let mut scan = false;
            for (name, child) in &need.children {
                if maybe_from_non_string(name) {
                    scan = true;
                } else if let Some(member) = dict.get_item(name)? {
                    if let Some(value) = self.projected(&member, child)? {
                        map.insert(name.clone(), value);
                    }
                }
            }
            if scan {
                for (key, member) in dict.iter() {
                    let Some(key) = json_key(&key)? else { continue };
                    let Some((name, child)) = need.children.get_key_value(&key) else { continue };
                    if !maybe_from_non_string(name) {
                        continue;
                    }
                    match self.projected(&member, child)? {
                        Some(value) => {
                            map.insert(name.clone(), value);
                        }
                        None => {
                            map.remove(name);
                        }
                    }
                }
            }
            return Ok(Some(Value::Object(map)));
        }
        if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
            let len = obj.len()?;
            let end = need.max_index().map_or(0, |i| (i + 1).min(len));
            let mut out = vec![Value::Null; end];
            for (name, child) in &need.children {
                if let Some(i) = Need::index(name).filter(|i| *i < end) {
                    out[i] = self.projected(&obj.get_item(i)?, child)?.unwrap_or(Value::Null);
                }
            }
            return Ok(Some(Value::Array(out)));
        }
        if obj.is_none()
            || obj.is_instance_of::<PyString>()
            || obj.is_instance_of::<PyInt>()
            || obj.is_instance_of::<PyFloat>()
        {
            return self.value(obj);
        }
        // Anything else: its JSON form, cut down the same way.
        if self.open.len() >= MAX_DOC_DEPTH {
            return Ok(None);
        }
        let h = helpers(self.py)?;
        let viewed = h.json_view.bind(self.py).call1((obj,))?;
        if viewed.is(h.absent.bind(self.py)) {
            return Ok(None);
        }
        self.open.push(0);
        let out = self.projected(&viewed, need);
        self.open.pop();
        out
    }

    /// Anything else is read through its JSON form (`iii._filter._json_view`).
    fn other(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<Option<Value>> {
        if self.open.len() >= MAX_DOC_DEPTH {
            return Ok(None);
        }
        let h = helpers(self.py)?;
        let viewed = h.json_view.bind(self.py).call1((obj,))?;
        if viewed.is(h.absent.bind(self.py)) {
            return Ok(None);
        }
        self.open.push(0);
        let out = self.value(&viewed);
        self.open.pop();
        out
    }
}

/// Whether a key that is not a `str` (a number, a bool, `None`) could write as `name` in JSON.
fn maybe_from_non_string(name: &str) -> bool {
    matches!(name, "true" | "false" | "null" | "NaN" | "Infinity" | "-Infinity")
        || name.starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// A dict key as `json.dumps` writes it; `None` when it cannot (the member is dropped).
fn json_key(key: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(Some(s.to_string_lossy().into_owned()));
    }
    if key.is_none() {
        return Ok(Some("null".to_owned()));
    }
    if let Ok(b) = key.cast::<PyBool>() {
        return Ok(Some(if b.is_true() { "true" } else { "false" }.to_owned()));
    }
    if let Ok(f) = key.cast::<PyFloat>() {
        let v = f.value();
        if v.is_nan() {
            return Ok(Some("NaN".to_owned()));
        }
        if v.is_infinite() {
            return Ok(Some(if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()));
        }
    }
    if key.is_instance_of::<PyInt>() || key.is_instance_of::<PyFloat>() {
        // int.__repr__ / float.__repr__, not a subclass's own repr.
        let base = if key.is_instance_of::<PyInt>() {
            key.py().get_type::<PyInt>()
        } else {
            key.py().get_type::<PyFloat>()
        };
        let text = base.getattr(pyo3::intern!(key.py(), "__repr__"))?.call1((key,))?;
        return Ok(Some(text.extract()?));
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------

/// A compiled observer filter.
#[pyclass(module = "iii._iii", frozen)]
pub struct Filter {
    filter: CoreFilter,
    /// What the filter reads of each root: only that is converted from the document.
    projection: Projection,
}

impl Filter {
    /// `doc[name]` as JSON, cut down to what `need` reads; `Ok(None)` when the root is absent.
    fn root<'py>(
        walk: &mut DocWalk<'py>,
        doc: &Bound<'py, PyAny>,
        dict: Option<&Bound<'py, PyDict>>,
        name: &str,
        need: &Need,
    ) -> PyResult<Option<Value>> {
        let member = match dict {
            Some(d) => d.get_item(name)?,
            None => {
                if doc.contains(name)? {
                    Some(doc.get_item(name)?)
                } else {
                    None
                }
            }
        };
        match member {
            Some(m) => walk.projected(&m, need),
            None => Ok(None),
        }
    }

    fn evaluate(&self, doc: &Bound<'_, PyAny>) -> PyResult<bool> {
        let dict = doc.cast::<PyDict>().ok();
        if dict.is_none() && doc.cast::<PyMapping>().is_err() {
            // Not a mapping: every root is absent.
            return Ok(self.filter.matches(&Doc::default()));
        }
        let mut walk = DocWalk { py: doc.py(), open: Vec::new() };
        let mut values: [Option<Value>; 5] = Default::default();
        for ((slot, name), need) in values.iter_mut().zip(core_filter::ROOTS).zip(&self.projection.roots) {
            if let Some(need) = need {
                *slot = Self::root(&mut walk, doc, dict, name, need)?;
            }
        }
        let [input, output, error, caller, metadata] = &values;
        Ok(self.filter.matches(&Doc {
            input: input.as_ref(),
            output: output.as_ref(),
            error: error.as_ref(),
            caller: caller.as_ref(),
            metadata: metadata.as_ref(),
        }))
    }
}

#[pymethods]
impl Filter {
    /// Validates and compiles `src`; raises `iii.filter.FilterError` (`INVALID_FILTER`).
    /// `trusted`: the engine's normal form, exempt from the encoded-size limit.
    #[new]
    #[pyo3(signature = (src, trusted = false))]
    fn new(py: Python<'_>, src: &Bound<'_, PyAny>, trusted: bool) -> PyResult<Self> {
        let value = match filter_source(src) {
            Ok(v) => v,
            Err(Strict::Invalid(message)) => return Err(filter_error(py, "INVALID_FILTER", message)),
            Err(Strict::InvalidPy(message)) => return Err(filter_error(py, "INVALID_FILTER", message)),
            Err(Strict::Py(e)) => return Err(e),
        };
        match core_filter::compile(&value, trusted) {
            Ok(filter) => Ok(Filter { projection: Projection::of(&filter), filter }),
            Err(e) => Err(filter_error(py, e.code.as_str(), e.message)),
        }
    }

    /// Evaluates the filter on `{input?, output?, error?, caller?, metadata?}`. Total: a
    /// document (or a value in it) that cannot be read is a non-match, never an exception.
    fn matches(&self, doc: &Bound<'_, PyAny>) -> bool {
        if self.filter.is_match_all() {
            return true;
        }
        self.evaluate(doc).unwrap_or(false)
    }

    /// The roots any clause references, in envelope order.
    #[getter]
    fn roots(&self) -> Vec<&'static str> {
        core_filter::root_names(self.filter.roots()).collect()
    }

    /// True for `{}` and the filters that normalize to it.
    #[getter]
    fn match_all(&self) -> bool {
        self.filter.is_match_all()
    }

    /// Checks `input.*` paths against `request_format` and `output.*` paths against
    /// `response_format` (JSON Schemas), as the engine does when an observer is created.
    /// Returns the warnings for paths that could not be verified; raises `FilterError`
    /// (`INVALID_FILTER_PATH`) for a path a closed schema rules out.
    #[pyo3(signature = (request_format = None, response_format = None))]
    fn check_schema_paths<'py>(
        &self,
        py: Python<'py>,
        request_format: Option<&Bound<'py, PyAny>>,
        response_format: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<String>> {
        let mut walk = DocWalk { py, open: Vec::new() };
        let mut schema = |format: Option<&Bound<'py, PyAny>>| -> PyResult<Option<Value>> {
            match format {
                Some(f) if !f.is_none() => walk.value(f),
                _ => Ok(None),
            }
        };
        let request = schema(request_format)?;
        let response = schema(response_format)?;
        self.filter
            .check_schema_paths(request.as_ref(), response.as_ref())
            .map_err(|e| filter_error(py, e.code.as_str(), e.message))
    }

    /// The normal form (what the engine stores and sends), as compact JSON text.
    fn normalized_json(&self) -> String {
        self.filter.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Filter({})", self.filter)
    }
}

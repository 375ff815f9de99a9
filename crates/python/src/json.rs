//! Python objects <-> JSON text, in one pass each way, without the `json` module.
//!
//! Encoding takes what users return from handlers and pass as payloads: the JSON types, tuples,
//! pydantic models (`model_dump(mode="json")`), dataclasses, enums, dates and times, UUIDs,
//! decimals, sets, and ints of any size. Anything else raises `PayloadNotSerializableError`
//! naming the type and where it sits in the payload.

use std::borrow::Cow;
use std::fmt;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::errors;

const MAX_DEPTH: usize = 200;

struct Encoder<'py> {
    py: Python<'py>,
    out: Vec<u8>,
    path: Vec<PathPart>,
}

enum PathPart {
    Key(String),
    Index(usize),
}

fn path_text(path: &[PathPart]) -> String {
    if path.is_empty() {
        return "the payload".to_owned();
    }
    let mut s = String::from("payload");
    for p in path {
        match p {
            PathPart::Key(k) => s.push_str(&format!("[{k:?}]")),
            PathPart::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

struct Helpers {
    dataclasses_is_dataclass: Py<PyAny>,
    dataclasses_asdict: Py<PyAny>,
    enum_type: Py<PyAny>,
    isoformat_types: Py<PyAny>,
    str_types: Py<PyAny>,
}

static HELPERS: PyOnceLock<Helpers> = PyOnceLock::new();

fn helpers(py: Python<'_>) -> PyResult<&Helpers> {
    HELPERS.get_or_try_init(py, || {
        let dataclasses = py.import("dataclasses")?;
        let datetime = py.import("datetime")?;
        let isoformat_types = PyTuple::new(
            py,
            [datetime.getattr("datetime")?, datetime.getattr("date")?, datetime.getattr("time")?],
        )?;
        let str_types = PyTuple::new(
            py,
            [
                py.import("uuid")?.getattr("UUID")?,
                py.import("decimal")?.getattr("Decimal")?,
                py.import("pathlib")?.getattr("PurePath")?,
            ],
        )?;
        Ok::<_, PyErr>(Helpers {
            dataclasses_is_dataclass: dataclasses.getattr("is_dataclass")?.unbind(),
            dataclasses_asdict: dataclasses.getattr("asdict")?.unbind(),
            enum_type: py.import("enum")?.getattr("Enum")?.unbind(),
            isoformat_types: isoformat_types.into_any().unbind(),
            str_types: str_types.into_any().unbind(),
        })
    })
}

impl<'py> Encoder<'py> {
    fn fail(&self, what: impl fmt::Display) -> PyErr {
        errors::not_serialisable(self.py, &format!("{} {what}", path_text(&self.path)))
    }

    fn write_str(&mut self, s: &str) {
        iii_protocol::write_json_str(&mut self.out, s);
    }

    fn key_text(&self, key: &Bound<'py, PyAny>) -> PyResult<Cow<'py, str>> {
        if let Ok(s) = key.cast::<PyString>() {
            return Ok(Cow::Owned(s.to_str()?.to_owned()));
        }
        if key.is_none() {
            return Ok(Cow::Borrowed("null"));
        }
        if let Ok(b) = key.cast::<PyBool>() {
            return Ok(Cow::Borrowed(if b.is_true() { "true" } else { "false" }));
        }
        if key.is_instance_of::<PyInt>() || key.is_instance_of::<PyFloat>() {
            return Ok(Cow::Owned(key.str()?.to_str()?.to_owned()));
        }
        Err(self.fail(format_args!(
            "has a key of type {} (JSON object keys must be str, int, float, bool or None)",
            type_name(key)
        )))
    }

    fn encode(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.path.len() > MAX_DEPTH {
            return Err(self
                .fail(format_args!("is nested more than {MAX_DEPTH} levels deep (a circular reference?)")));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            let text = s.to_str()?;
            self.write_str(text);
        } else if obj.is_none() {
            self.out.extend_from_slice(b"null");
        } else if let Ok(b) = obj.cast::<PyBool>() {
            self.out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
        } else if let Ok(i) = obj.cast::<PyInt>() {
            match i.extract::<i64>() {
                Ok(v) => self.out.extend_from_slice(itoa_i64(v).as_bytes()),
                Err(_) => self.out.extend_from_slice(i.str()?.to_str()?.as_bytes()),
            }
        } else if let Ok(f) = obj.cast::<PyFloat>() {
            let v = f.value();
            if !v.is_finite() {
                return Err(self.fail(format_args!("is the float {v}, which JSON cannot represent")));
            }
            serde_json::to_writer(&mut self.out, &v).expect("finite floats serialise");
        } else if let Ok(d) = obj.cast::<PyDict>() {
            self.out.push(b'{');
            for (n, (k, v)) in d.iter().enumerate() {
                if n > 0 {
                    self.out.push(b',');
                }
                let key = self.key_text(&k)?;
                self.write_str(&key);
                self.out.push(b':');
                self.path.push(PathPart::Key(key.into_owned()));
                self.encode(&v)?;
                self.path.pop();
            }
            self.out.push(b'}');
        } else if let Ok(l) = obj.cast::<PyList>() {
            self.encode_seq(l.iter())?;
        } else if let Ok(t) = obj.cast::<PyTuple>() {
            self.encode_seq(t.iter())?;
        } else {
            self.encode_other(obj)?;
        }
        Ok(())
    }

    fn encode_seq(&mut self, items: impl Iterator<Item = Bound<'py, PyAny>>) -> PyResult<()> {
        self.out.push(b'[');
        for (n, item) in items.enumerate() {
            if n > 0 {
                self.out.push(b',');
            }
            self.path.push(PathPart::Index(n));
            self.encode(&item)?;
            self.path.pop();
        }
        self.out.push(b']');
        Ok(())
    }

    /// The slow path: objects that stand for JSON values.
    fn encode_other(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let h = helpers(py)?;
        if let Ok(dump) = obj.getattr(pyo3::intern!(py, "model_dump")) {
            if !obj.is_instance_of::<pyo3::types::PyType>() {
                let kwargs = PyDict::new(py);
                kwargs.set_item("mode", "json")?;
                let dumped = dump.call((), Some(&kwargs))?;
                return self.encode(&dumped);
            }
        }
        if obj.is_instance(h.enum_type.bind(py))? {
            return self.encode(&obj.getattr("value")?);
        }
        if obj.is_instance(h.isoformat_types.bind(py))? {
            let text = obj.call_method0("isoformat")?;
            return self.encode(&text);
        }
        if obj.is_instance(h.str_types.bind(py))? {
            let text = obj.str()?;
            return self.encode(text.as_any());
        }
        if obj.is_instance_of::<pyo3::types::PySet>() || obj.is_instance_of::<pyo3::types::PyFrozenSet>() {
            return self.encode_seq(obj.try_iter()?.collect::<PyResult<Vec<_>>>()?.into_iter());
        }
        if h.dataclasses_is_dataclass.bind(py).call1((obj,))?.is_truthy()?
            && !obj.is_instance_of::<pyo3::types::PyType>()
        {
            let as_dict = h.dataclasses_asdict.bind(py).call1((obj,))?;
            return self.encode(&as_dict);
        }
        if let Ok(mapping) = obj.cast::<pyo3::types::PyMapping>() {
            let d = PyDict::new(py);
            for item in mapping.items()?.iter() {
                let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item.extract()?;
                d.set_item(k, v)?;
            }
            return self.encode(d.as_any());
        }
        Err(self.fail(format_args!("is of type {}, which is not JSON-serialisable", type_name(obj))))
    }
}

fn itoa_i64(v: i64) -> String {
    v.to_string()
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".to_owned())
}

/// Encodes a Python object as JSON text.
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let mut enc = Encoder { py: obj.py(), out: Vec::with_capacity(128), path: Vec::new() };
    enc.encode(obj)?;
    // Only valid UTF-8 is ever written: str contents (checked by Python) and ASCII.
    Ok(String::from_utf8(enc.out).expect("encoder writes UTF-8"))
}

/// `None` for Python `None` (sent as JSON null), else the JSON text.
pub fn to_json_opt(obj: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if obj.is_none() {
        Ok(None)
    } else {
        to_json(obj).map(Some)
    }
}

struct Seed<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for Seed<'py> {
    type Value = Bound<'py, PyAny>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for Seed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into_pyobject(self.0).expect("int conversion").into_any())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into_pyobject(self.0).expect("int conversion").into_any())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.0, v).into_any())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.0);
        while let Some(item) = seq.next_element_seed(Seed(self.0))? {
            list.append(item).map_err(serde::de::Error::custom)?;
        }
        Ok(list.into_any())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value = map.next_value_seed(Seed(self.0))?;
            dict.set_item(PyString::new(self.0, &key), value).map_err(serde::de::Error::custom)?;
        }
        Ok(dict.into_any())
    }
}

/// Decodes JSON text into Python objects.
pub fn from_json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Seed(py)
        .deserialize(&mut de)
        .map_err(|e| errors::protocol(py, &format!("invalid JSON from the engine: {e}")))?;
    Ok(value)
}

/// A payload from a decoded frame (`None`: JSON null or absent becomes Python `None`). The
/// text was captured as a `RawValue`, which serde_json accepts only as valid JSON, so it is
/// read here without checking it again (`Checked`).
pub fn from_json_opt<'py>(py: Python<'py>, text: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
    match text {
        Some(t) => Checked { py, text: t, at: 0 }.value(0),
        None => Ok(py.None().into_bound(py)),
    }
}

/// Reads JSON that serde_json has already checked into Python objects, with the same results
/// as `from_json` (strings with escapes and numbers go through serde_json itself).
///
/// NOTE(perf): `from_json` checks every byte of every string again (for control characters);
/// here the end of a string is found with `memchr2`. With large payloads that second check is a
/// large share of each process's CPU (benches/RESULTS.md, "Payloads from the engine are not
/// checked twice").
struct Checked<'a, 'py> {
    py: Python<'py>,
    text: &'a str,
    at: usize,
}

impl<'a, 'py> Checked<'a, 'py> {
    fn fail(&self, what: &str) -> PyErr {
        errors::protocol(self.py, &format!("invalid JSON from the engine: {what} at byte {}", self.at))
    }

    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8) -> PyResult<()> {
        if self.peek() != Some(byte) {
            return Err(self.fail(&format!("expected {:?}", byte as char)));
        }
        self.at += 1;
        Ok(())
    }

    fn value(&mut self, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return Err(self.fail("nesting too deep"));
        }
        let py = self.py;
        match self.peek() {
            Some(b'{') => {
                self.at += 1;
                let dict = PyDict::new(py);
                let mut first = true;
                while self.more(b'}', first)? {
                    first = false;
                    if self.peek() != Some(b'"') {
                        return Err(self.fail("expected a key"));
                    }
                    let key = self.string()?;
                    self.expect(b':')?;
                    let value = self.value(depth + 1)?;
                    dict.set_item(PyString::new(py, &key), value)?;
                }
                Ok(dict.into_any())
            }
            Some(b'[') => {
                self.at += 1;
                let list = PyList::empty(py);
                let mut first = true;
                while self.more(b']', first)? {
                    first = false;
                    list.append(self.value(depth + 1)?)?;
                }
                Ok(list.into_any())
            }
            Some(b'"') => Ok(PyString::new(py, &self.string()?).into_any()),
            Some(b't') => self.word("true", PyBool::new(py, true).to_owned().into_any()),
            Some(b'f') => self.word("false", PyBool::new(py, false).to_owned().into_any()),
            Some(b'n') => self.word("null", py.None().into_bound(py)),
            Some(_) => self.number(),
            None => Err(self.fail("expected a value")),
        }
    }

    /// Whether another member of the object or array being read follows (`first`: none has
    /// been read yet); consumes the `,` or the `close` that says so.
    fn more(&mut self, close: u8, first: bool) -> PyResult<bool> {
        match self.peek() {
            Some(b) if b == close => {
                self.at += 1;
                Ok(false)
            }
            Some(b',') if !first => {
                self.at += 1;
                Ok(true)
            }
            _ if first => Ok(true),
            _ => Err(self.fail(&format!("expected ',' or {:?}", close as char))),
        }
    }

    fn word(&mut self, word: &str, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !self.text[self.at..].starts_with(word) {
            return Err(self.fail("expected a value"));
        }
        self.at += word.len();
        Ok(value)
    }

    /// The string starting at the `"` under `at`.
    fn string(&mut self) -> PyResult<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        let start = self.at + 1;
        let mut end = start;
        let mut escaped = false;
        loop {
            match memchr::memchr2(b'"', b'\\', &bytes[end..]) {
                Some(n) if bytes[end + n] == b'"' => {
                    end += n;
                    break;
                }
                Some(n) => {
                    escaped = true;
                    end += n + 2; // the backslash and the byte it escapes
                    if end > bytes.len() {
                        return Err(self.fail("unterminated string"));
                    }
                }
                None => return Err(self.fail("unterminated string")),
            }
        }
        self.at = end + 1;
        if !escaped {
            return Ok(Cow::Borrowed(&self.text[start..end]));
        }
        serde_json::from_str::<String>(&self.text[start - 1..end + 1])
            .map(Cow::Owned)
            .map_err(|e| errors::protocol(self.py, &format!("invalid JSON from the engine: {e}")))
    }

    fn number(&mut self) -> PyResult<Bound<'py, PyAny>> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        while self.at < bytes.len()
            && matches!(bytes[self.at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        {
            self.at += 1;
        }
        let number = &self.text[start..self.at];
        // Up to 18 digits is always an exact i64; anything else is read by the strict decoder,
        // whose results (big integers and floats) this must match to the last bit.
        let digits = number.strip_prefix('-').unwrap_or(number);
        if digits.len() <= 18 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            match number.parse::<i64>() {
                Ok(0) if number.starts_with('-') => {} // serde_json reads -0 as the float -0.0
                Ok(v) => return Ok(v.into_pyobject(self.py)?.into_any()),
                Err(_) => {}
            }
        }
        from_json(self.py, number)
    }
}

//! `Telemetry` and `InvocationSpan`: the Python face of `iii_core::telemetry`. One `Telemetry`
//! per registered worker; the dispatch asks it for an `InvocationSpan` per incoming call and
//! ends the span when the handler returns. Everything after `end` (batching, encoding,
//! sending) happens on the exporter's thread, without the GIL.
//!
//! The invocation span is iii-sdk 0.25.0's (docs/protocol.md C.20): INTERNAL `execute
//! <function_id>`, baggage entries as attributes, and the payload events
//! `iii.invocation.input` / `iii.invocation.output` (redacted, truncated; `payload_json`).
//! NOTE: for every engine generation, not only 0.25: engine v0.11.0 already makes the SERVER
//! `call <function_id>` span of each invocation (its `invocation/mod.rs`) and hands its
//! context to the worker, so the SDK's own SERVER `call` span duplicated it there too.
//! NOTE(perf): the payload JSON is written here from the Python objects, not by
//! `iii._observability.redact_and_truncate` (benches/RESULTS.md, "Payload events in Rust").

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMapping, PySequence, PyString, PyTuple};

use super::events::Invocation;
use super::json::to_json;
use super::options::OtelConfig;
use super::runtime;
use iii_core::telemetry::context::{format_baggage, parse_baggage, SpanContext, SpanId, TraceId};
use iii_core::telemetry::exporter::{Exporter, ExporterConfig};
use iii_core::telemetry::link::TelemetryLink;
use iii_core::telemetry::log::{LogRecord, Severity};
use iii_core::telemetry::metrics::{
    AppData, AppMetric, HistogramPoint, NumberPoint, Point, ProcessSampler, PROCESS_GAUGES,
};
use iii_core::telemetry::otlp::{now_unix_nanos, AnyValue};
use iii_core::telemetry::payload;
use iii_core::telemetry::resource::{OtelOverrides, OtelSettings};
use iii_core::telemetry::span::{Scope, SpanEvent, SpanKind, SpanRecord, StatusCode};

/// Scopes remembered for spans handed over from Python; past this, scopes are not interned.
const MAX_SCOPES: usize = 256;

/// The exporter and the settings it was built from.
#[pyclass(frozen, module = "iii._iii")]
pub struct Telemetry {
    exporter: Arc<Exporter>,
    settings: OtelSettings,
    service_name: Arc<str>,
    scopes: Mutex<HashMap<(String, String), Arc<Scope>>>,
    /// A connection of its own, when telemetry goes to another engine (`connect`), and
    /// whether it stays when a worker binds its link (`pinned`).
    own_link: Mutex<Option<(Arc<TelemetryLink>, bool)>>,
}

impl Telemetry {
    /// Sends this worker's telemetry on `conn`, the worker's own link (replaces a connection
    /// made with `connect`, unless it was pinned: an `engine_ws_url` naming another engine).
    pub(crate) fn bind_connection(&self, conn: &iii_core::connection::Connection) {
        let own = self.own_link.lock();
        if own.as_ref().is_some_and(|(_, pinned)| *pinned) {
            return;
        }
        self.exporter.set_sink(Arc::new(conn.clone()));
    }

    fn scope(&self, name: String, version: String) -> Arc<Scope> {
        let mut scopes = self.scopes.lock();
        if let Some(scope) = scopes.get(&(name.clone(), version.clone())) {
            return scope.clone();
        }
        let scope = Arc::new(Scope { name: name.clone(), version: version.clone() });
        if scopes.len() < MAX_SCOPES {
            scopes.insert((name, version), scope.clone());
        }
        scope
    }
}

#[pymethods]
impl Telemetry {
    /// Starts the exporter thread with the settings of `config` (an `OtelConfig`; unset
    /// fields fall back to the environment, `OTEL_SERVICE_NAME`, `SERVICE_VERSION`, ..., and
    /// the defaults). Metrics only when `metrics` too.
    #[new]
    #[pyo3(signature = (config=None, *, metrics=true))]
    fn new(config: Option<OtelConfig>, metrics: bool) -> PyResult<Self> {
        let overrides = match config {
            Some(config) => config.overrides(metrics),
            None => OtelOverrides { metrics_enabled: Some(metrics), ..OtelOverrides::default() },
        };
        let settings = OtelSettings::resolve(overrides, |name| std::env::var(name).ok());
        let exporter = Exporter::start(&settings, ExporterConfig::from_settings(&settings))
            .map_err(|e| PyValueError::new_err(format!("cannot start the telemetry thread: {e}")))?;
        Ok(Telemetry {
            exporter: Arc::new(exporter),
            service_name: Arc::from(settings.service_name.as_str()),
            settings,
            scopes: Mutex::new(HashMap::new()),
            own_link: Mutex::new(None),
        })
    }

    /// False when `OTEL_ENABLED` (or `enabled`) switched telemetry off.
    #[getter]
    fn enabled(&self) -> bool {
        self.settings.enabled
    }

    #[getter]
    fn logs_enabled(&self) -> bool {
        self.settings.logs_enabled
    }

    #[getter]
    fn service_name(&self) -> &str {
        &self.settings.service_name
    }

    /// The resource attributes sent with every frame, as a dict of strings.
    fn resource(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let out = PyDict::new(py);
        for (k, v) in self.settings.resource_attributes() {
            if let AnyValue::Str(s) = v {
                out.set_item(k, s)?;
            }
        }
        Ok(out.unbind())
    }

    /// Opens a telemetry-only connection to `url` with the upgrade `headers` and sends
    /// telemetry there (for an `engine_ws_url` that names another engine). With
    /// `telemetry_path` it dials `<url>/otel` (engines after v0.11.0 register no worker for
    /// it) and falls back to `url` when the engine answers 404 (v0.11.0, where the socket shows
    /// up as an anonymous worker). A `pinned` connection stays when a worker binds its own
    /// link (`Connection.bind_telemetry`).
    #[pyo3(signature = (url, headers=None, telemetry_path=true, pinned=false))]
    fn connect(
        &self,
        url: String,
        headers: Option<&Bound<'_, PyAny>>,
        telemetry_path: bool,
        pinned: bool,
    ) -> PyResult<()> {
        let headers = match headers.filter(|h| !h.is_none()) {
            Some(h) => {
                let map =
                    h.cast::<PyMapping>().map_err(|_| PyTypeError::new_err("headers must be a mapping"))?;
                let mut out = Vec::new();
                for item in map.items()?.try_iter()? {
                    let (k, v): (String, String) = item?.extract()?;
                    out.push((k, v));
                }
                out
            }
            None => Vec::new(),
        };
        let link = TelemetryLink::start(runtime::handle(), &url, headers, telemetry_path);
        self.exporter.set_sink(link.clone());
        if let Some((old, _)) = self.own_link.lock().replace((link, pinned)) {
            old.shutdown();
        }
        Ok(())
    }

    /// The URL of the telemetry-only connection (`connect`), `None` without one.
    #[getter]
    fn link_url(&self) -> Option<String> {
        self.own_link.lock().as_ref().map(|(l, _)| l.url())
    }

    /// The engine's id for the worker; the gauges carry it as `worker.id`.
    fn set_worker_id(&self, worker_id: Option<String>) {
        self.exporter.set_worker_id(worker_id);
    }

    /// Reports the event loop's latest lag, in milliseconds (`iii.worker.event_loop.lag_ms`).
    fn set_event_loop_lag(&self, ms: f64) {
        self.exporter.set_event_loop_lag(ms);
    }

    /// Starts the INTERNAL span `execute <function_id>` of an invocation, the child of
    /// `traceparent` (a new trace without one or when it is malformed). `baggage` is kept for
    /// the result and its entries become the span's attributes. With `payload` (not `None`),
    /// the span records it as its `iii.invocation.input` event (unless
    /// `III_DISABLE_TRACE_PAYLOADS`).
    #[pyo3(signature = (function_id, traceparent=None, baggage=None, payload=None))]
    fn start_invocation(
        &self,
        function_id: &str,
        traceparent: Option<&str>,
        baggage: Option<String>,
        payload: Option<&Bound<'_, PyAny>>,
    ) -> InvocationSpan {
        let parent = traceparent.and_then(SpanContext::parse_traceparent);
        let context = SpanContext {
            trace_id: parent.map_or_else(TraceId::random, |p| p.trace_id),
            span_id: SpanId::random(),
            sampled: parent.is_none_or(|p| p.sampled),
        };
        let start_unix_nano = now_unix_nanos();
        // As `span.is_recording()` and the environment, read when the span starts.
        let capture = if context.sampled { payload::capture_from_env() } else { None };
        let mut events = Vec::new();
        if let (Some(max_bytes), Some(data)) = (capture, payload) {
            let (json, truncated) = payload_text(data, max_bytes);
            events.push(payload::input_event(json, truncated, start_unix_nano));
        }
        InvocationSpan {
            exporter: self.exporter.clone(),
            context,
            parent: parent.map(|p| p.span_id),
            kind: SpanKind::Internal,
            function_id: function_id.to_owned(),
            start_unix_nano,
            baggage: baggage.filter(|b| !b.is_empty()),
            ended: AtomicBool::new(false),
            capture,
            events: Mutex::new(events),
        }
    }

    /// `start_invocation` with the invocation's own fields (read here, not in Python); its
    /// data is the input event's payload.
    fn start_for(&self, invocation: &Bound<'_, Invocation>) -> InvocationSpan {
        let inv = invocation.get();
        let data = inv.data.bind(invocation.py());
        self.start_invocation(&inv.function_id, inv.traceparent.as_deref(), inv.baggage.clone(), Some(data))
    }

    /// The payload event text of `value`: redacted, as `json.dumps(value, default=str,
    /// ensure_ascii=False)`, cut to `max_bytes` (see `iii._observability.redact_and_truncate`,
    /// which it matches); and whether it was cut.
    #[staticmethod]
    #[pyo3(signature = (value, max_bytes=None))]
    fn payload_json(value: &Bound<'_, PyAny>, max_bytes: Option<i64>) -> (String, bool) {
        payload_text(value, max_bytes.and_then(|m| usize::try_from(m).ok()).filter(|m| *m > 0))
    }

    /// Starts the CLIENT span `trigger <function_id>` of a call made outside any span: the
    /// root of a new trace, so the callee's spans hang under something the engine has.
    #[pyo3(signature = (function_id, baggage=None))]
    fn start_call(&self, function_id: &str, baggage: Option<String>) -> InvocationSpan {
        InvocationSpan {
            exporter: self.exporter.clone(),
            context: SpanContext { trace_id: TraceId::random(), span_id: SpanId::random(), sampled: true },
            parent: None,
            kind: SpanKind::Client,
            function_id: function_id.to_owned(),
            start_unix_nano: now_unix_nanos(),
            baggage: baggage.filter(|b| !b.is_empty()),
            ended: AtomicBool::new(false),
            capture: None,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Queues a span finished by Python's opentelemetry-sdk, as the tuple
    /// `(trace_id, span_id, parent_span_id | None, name, kind, start_ns, end_ns, status_code,
    /// status_message | None, attributes | None, events | None, scope_name, scope_version | None)`
    /// with Python's `SpanKind` / `StatusCode` numbers and events as `(name, time_ns, attributes)`.
    fn record_span(&self, span: &Bound<'_, PyTuple>) -> PyResult<()> {
        if span.len() != 13 {
            return Err(PyValueError::new_err(format!(
                "record_span expects a 13-tuple, got {} items",
                span.len()
            )));
        }
        let item = |i: usize| span.get_item(i);
        let parent: Option<u64> = item(2)?.extract()?;
        let events = item(10)?;
        let events = if events.is_none() {
            Vec::new()
        } else {
            let mut out = Vec::new();
            for event in events.try_iter()? {
                let (name, time, attrs): (String, u64, Bound<'_, PyAny>) = event?.extract()?;
                out.push(SpanEvent { name, time_unix_nano: time, attributes: attributes(&attrs)? });
            }
            out
        };
        let scope_version: Option<String> = item(12)?.extract()?;
        let status_message: Option<String> = item(8)?.extract()?;
        let record = SpanRecord {
            trace_id: TraceId(item(0)?.extract()?),
            span_id: SpanId(item(1)?.extract()?),
            parent_span_id: parent.filter(|p| *p != 0).map(SpanId),
            name: item(3)?.extract()?,
            kind: SpanKind::from_python(item(4)?.extract()?),
            start_unix_nano: item(5)?.extract()?,
            end_unix_nano: item(6)?.extract()?,
            status: StatusCode::from_number(item(7)?.extract()?),
            status_message: status_message.filter(|m| !m.is_empty()),
            attributes: attributes(&item(9)?)?,
            events,
            scope: Some(self.scope(item(11)?.extract()?, scope_version.unwrap_or_default())),
        };
        self.exporter.push_span(record);
        Ok(())
    }

    /// Queues one collection of the application's instruments (see `_otel_bridge`), a list of
    /// `(name, description, unit, kind, monotonic, temporality, points, scope_name,
    /// scope_version | None)` with `kind` `"gauge"`, `"sum"` or `"histogram"`, `temporality`
    /// OTLP's number (1 delta, 2 cumulative), and points `(attributes, start_ns, time_ns, value)`,
    /// or for histograms `(attributes, start_ns, time_ns, count, sum, bucket_counts,
    /// explicit_bounds, min | None, max | None)`.
    fn record_metrics(&self, metrics: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut out = Vec::new();
        for metric in metrics.try_iter()? {
            type Head<'py> =
                (String, String, String, String, bool, u8, Bound<'py, PyAny>, String, Option<String>);
            let (name, description, unit, kind, monotonic, temporality, points, scope, version): Head<'_> =
                metric?.extract()?;
            let data = match kind.as_str() {
                "gauge" => AppData::Gauge(number_points(&points)?),
                "sum" => AppData::Sum { points: number_points(&points)?, monotonic, temporality },
                "histogram" => AppData::Histogram { points: histogram_points(&points)?, temporality },
                other => return Err(PyValueError::new_err(format!("unknown metric kind {other:?}"))),
            };
            let scope = self.scope(scope, version.unwrap_or_default());
            out.push(AppMetric { name, description, unit, data, scope });
        }
        self.exporter.push_app_metrics(out);
        Ok(())
    }

    /// Queues a frame built by the caller: `prefix` (`OTLP`, `LOGS` or `MTRC`) then `payload`
    /// (its OTLP/JSON), sent whole and in order (the official `send_threadsafe`).
    fn send_frame(&self, prefix: &[u8], payload: &[u8]) {
        self.exporter.push_frame([prefix, payload].concat());
    }

    /// Queues a log record. `severity` is an OTel severity number (DEBUG 5, INFO 9, WARN 13,
    /// ERROR 17); `data` any JSON-able value (pydantic models are dumped), kept as structure
    /// in `log.data`; `trace_id` / `span_id` correlate it with a span.
    #[pyo3(signature = (severity, body, data=None, trace_id=None, span_id=None, service_name=None))]
    fn emit_log(
        &self,
        severity: i64,
        body: String,
        data: Option<&Bound<'_, PyAny>>,
        trace_id: Option<u128>,
        span_id: Option<u64>,
        service_name: Option<&str>,
    ) {
        if !self.settings.logs_enabled {
            return;
        }
        let data = data.filter(|d| !d.is_none()).map(|d| {
            to_json(d).unwrap_or_else(|_| {
                let text = d.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<unrepresentable>".into());
                serde_json::to_string(&text).unwrap_or_default()
            })
        });
        self.exporter.push_log(LogRecord {
            time_unix_nano: now_unix_nanos(),
            severity: Severity::from_number(severity),
            body,
            service_name: service_name.map_or_else(|| self.service_name.clone(), Arc::from),
            data,
            trace_id: trace_id.filter(|t| *t != 0).map(TraceId),
            span_id: span_id.filter(|s| *s != 0).map(SpanId),
        });
    }

    /// Sends what is buffered, waiting at most `timeout_ms` (GIL released). True when all of
    /// it went out.
    #[pyo3(signature = (timeout_ms=5000))]
    fn flush(&self, py: Python<'_>, timeout_ms: u64) -> bool {
        py.detach(|| self.exporter.flush(Duration::from_millis(timeout_ms)))
    }

    /// Flushes within `timeout_ms` and stops exporting. Idempotent.
    #[pyo3(signature = (timeout_ms=5000))]
    fn shutdown(&self, py: Python<'_>, timeout_ms: u64) -> bool {
        let done = py.detach(|| self.exporter.shutdown(Duration::from_millis(timeout_ms)));
        if let Some((link, _)) = self.own_link.lock().take() {
            link.shutdown();
        }
        done
    }

    /// Formats `{key: value}` as a W3C `baggage` header value.
    #[staticmethod]
    fn format_baggage(entries: &Bound<'_, PyDict>) -> PyResult<String> {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for (k, v) in entries.iter() {
            pairs.push((k.extract()?, v.str()?.to_str()?.to_owned()));
        }
        Ok(format_baggage(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }

    /// Parses a W3C `baggage` header value into a dict (malformed members are skipped).
    #[staticmethod]
    fn parse_baggage(py: Python<'_>, header: &str) -> PyResult<Py<PyDict>> {
        let out = PyDict::new(py);
        for (k, v) in parse_baggage(header) {
            out.set_item(k, v)?;
        }
        Ok(out.unbind())
    }

    /// This process's worker gauges, sampled as the exporter samples them: a dict of
    /// `{field: value}` for the fields of `worker_gauges()` (`None` where the OS gives no figure)
    /// and `time_unix_nano`. `cpu_percent` covers the time since `previous`, an earlier result,
    /// or without one since the process started.
    #[staticmethod]
    #[pyo3(signature = (previous=None))]
    fn sample_process(py: Python<'_>, previous: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyDict>> {
        let mut sampler = match previous {
            Some(previous) => {
                let figure = |field: &str| match previous.get_item(field)? {
                    Some(v) => Ok(v),
                    None => Err(PyValueError::new_err(format!("previous sample has no {field}"))),
                };
                let uptime: f64 = figure("uptime_seconds")?.extract()?;
                let cpu: u64 = figure("cpu_user_micros")?.extract::<u64>()?
                    + figure("cpu_system_micros")?.extract::<u64>()?;
                ProcessSampler::after(Duration::try_from_secs_f64(uptime).unwrap_or_default(), cpu)
            }
            None => ProcessSampler::after(Duration::ZERO, 0),
        };
        let gauges = sampler.sample("", None);
        let out = PyDict::new(py);
        for (spec, value) in PROCESS_GAUGES.iter().zip(gauges.values()) {
            match value {
                Some(Point::Int(v)) => out.set_item(spec.field, v)?,
                Some(Point::Double(v)) => out.set_item(spec.field, v)?,
                None => out.set_item(spec.field, py.None())?,
            }
        }
        out.set_item("time_unix_nano", gauges.time_unix_nano())?;
        Ok(out.unbind())
    }

    /// `(name, field, unit, description)` of each gauge in `sample_process`, as the exporter
    /// sends them.
    #[staticmethod]
    fn worker_gauges() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
        PROCESS_GAUGES.iter().map(|g| (g.name, g.field, g.unit, g.description)).collect()
    }

    /// Counters: frames sent, send failures, and records dropped (buffer full or too large).
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let c = self.exporter.counters();
        let out = PyDict::new(py);
        let (spans, logs, metrics) = self.exporter.buffered();
        for (k, v) in [
            ("frames_sent", c.frames_sent.load(Ordering::Relaxed)),
            ("send_failures", c.send_failures.load(Ordering::Relaxed)),
            ("spans_dropped", c.spans_dropped.load(Ordering::Relaxed)),
            ("logs_dropped", c.logs_dropped.load(Ordering::Relaxed)),
            ("metrics_dropped", c.metrics_dropped.load(Ordering::Relaxed)),
            ("oversize_dropped", c.oversize_dropped.load(Ordering::Relaxed)),
            ("frames_dropped", c.frames_dropped.load(Ordering::Relaxed)),
            ("spans_buffered", spans as u64),
            ("logs_buffered", logs as u64),
            ("metrics_buffered", metrics as u64),
        ] {
            out.set_item(k, v)?;
        }
        Ok(out.unbind())
    }
}

/// The span of one invocation (INTERNAL `execute <function_id>`), or of a call made outside
/// any span (CLIENT `trigger <function_id>`). End it once, with `end()`,
/// `end_with_output(value)` or `end_error(...)`.
#[pyclass(frozen, module = "iii._iii")]
pub struct InvocationSpan {
    exporter: Arc<Exporter>,
    context: SpanContext,
    parent: Option<SpanId>,
    kind: SpanKind,
    function_id: String,
    start_unix_nano: u64,
    baggage: Option<String>,
    ended: AtomicBool,
    /// Payload events: `None` when off (not sampled, or `III_DISABLE_TRACE_PAYLOADS`), else
    /// the size cap (`III_TRACE_PAYLOAD_MAX_BYTES`).
    capture: Option<Option<usize>>,
    /// Events recorded so far (the input event).
    events: Mutex<Vec<SpanEvent>>,
}

impl InvocationSpan {
    fn name(&self) -> String {
        match self.kind {
            SpanKind::Client => format!("trigger {}", self.function_id),
            _ => format!("execute {}", self.function_id),
        }
    }

    fn attributes(&self) -> Vec<(String, AnyValue)> {
        match self.kind {
            // As iii-helpers' BaggageSpanProcessor: every baggage entry, as a string.
            SpanKind::Internal => self
                .baggage
                .as_deref()
                .map(parse_baggage)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, AnyValue::Str(v)))
                .collect(),
            _ => vec![("function_id".into(), self.function_id.as_str().into())],
        }
    }

    /// Claims the span for ending: false when it already ended.
    fn claim(&self) -> bool {
        !self.ended.swap(true, Ordering::AcqRel)
    }

    fn finish(&self, status: StatusCode, message: Option<String>, more: Vec<SpanEvent>) {
        if !self.context.sampled {
            return;
        }
        let mut events = std::mem::take(&mut *self.events.lock());
        events.extend(more);
        self.exporter.push_span(SpanRecord {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            parent_span_id: self.parent,
            name: self.name(),
            kind: self.kind,
            start_unix_nano: self.start_unix_nano,
            end_unix_nano: now_unix_nanos(),
            attributes: self.attributes(),
            events,
            status,
            status_message: message,
            scope: None,
        });
    }

    /// Ends the span as successful with `value` as its `iii.invocation.output` event (what
    /// `Connection.answer` sends back).
    pub(crate) fn end_with(&self, value: &Bound<'_, PyAny>) {
        if !self.claim() {
            return;
        }
        let events = match self.capture {
            Some(max_bytes) => {
                let (json, truncated) = payload_text(value, max_bytes);
                vec![payload::output_event(json, truncated, true, now_unix_nanos())]
            }
            None => Vec::new(),
        };
        self.finish(StatusCode::Ok, None, events);
    }
}

#[pymethods]
impl InvocationSpan {
    /// The trace id as an int (`opentelemetry.trace.SpanContext.trace_id`).
    #[getter]
    fn trace_id(&self) -> u128 {
        self.context.trace_id.0
    }

    #[getter]
    fn span_id(&self) -> u64 {
        self.context.span_id.0
    }

    #[getter]
    fn sampled(&self) -> bool {
        self.context.sampled
    }

    /// This span's `traceparent`, for outgoing calls and the `invocationresult`.
    #[getter]
    pub(crate) fn traceparent(&self) -> String {
        self.context.traceparent()
    }

    /// The incoming `baggage` header, unchanged.
    #[getter]
    pub(crate) fn baggage(&self) -> Option<&str> {
        self.baggage.as_deref()
    }

    /// The incoming baggage as a dict (W3C-decoded).
    fn baggage_entries(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let out = PyDict::new(py);
        for (k, v) in self.baggage.as_deref().map(parse_baggage).unwrap_or_default() {
            out.set_item(k, v)?;
        }
        Ok(out.unbind())
    }

    /// The span's name (`execute <function_id>`, or `trigger <function_id>` for a call's).
    #[getter(name)]
    fn py_name(&self) -> String {
        self.name()
    }

    /// The OTLP span kind (1 INTERNAL, 3 CLIENT).
    #[getter]
    fn kind(&self) -> u8 {
        self.kind as u8
    }

    /// Ends the span as successful, without an output event.
    pub(crate) fn end(&self) {
        if self.claim() {
            self.finish(StatusCode::Ok, None, Vec::new());
        }
    }

    /// Ends the span as successful; `value`, the handler's result, is its
    /// `iii.invocation.output` event (`iii.payload.ok` true) when payloads are recorded.
    fn end_with_output(&self, value: &Bound<'_, PyAny>) {
        self.end_with(value);
    }

    /// Ends the span with status ERROR, the output event `{"error": message}`
    /// (`iii.payload.ok` false) when payloads are recorded, and one `exception` event.
    #[pyo3(signature = (exception_type, message, stacktrace=None))]
    pub(crate) fn end_error(&self, exception_type: &str, message: String, stacktrace: Option<&str>) {
        if !self.claim() {
            return;
        }
        let now = now_unix_nanos();
        let mut events = Vec::with_capacity(2);
        if let Some(max_bytes) = self.capture {
            let (json, truncated) = payload::error_json(&message, max_bytes);
            events.push(payload::output_event(json, truncated, false, now));
        }
        events.push(SpanEvent::exception(exception_type, &message, stacktrace, now));
        self.finish(StatusCode::Error, Some(message), events);
    }
}

/// Attribute values as OTel allows them (str, bool, int, float and sequences of them), plus
/// mappings kept as key-value lists; anything else becomes its `str()`.
fn any_value(value: &Bound<'_, PyAny>) -> PyResult<AnyValue> {
    if value.is_none() {
        return Ok(AnyValue::Null);
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(AnyValue::Str(s.to_str()?.to_owned()));
    }
    if let Ok(b) = value.extract::<bool>() {
        if value.is_instance_of::<pyo3::types::PyBool>() {
            return Ok(AnyValue::Bool(b));
        }
    }
    if value.is_instance_of::<pyo3::types::PyInt>() {
        return Ok(match value.extract::<i64>() {
            Ok(i) => AnyValue::Int(i),
            Err(_) => AnyValue::Str(value.str()?.to_str()?.to_owned()),
        });
    }
    if value.is_instance_of::<pyo3::types::PyFloat>() {
        return Ok(AnyValue::Double(value.extract()?));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let seq = value.cast::<PySequence>()?;
        let mut out = Vec::new();
        for item in seq.try_iter()? {
            out.push(any_value(&item?)?);
        }
        return Ok(AnyValue::Array(out));
    }
    if let Ok(map) = value.cast::<PyMapping>() {
        return Ok(AnyValue::KvList(pairs(map)?));
    }
    Ok(AnyValue::Str(value.str()?.to_str()?.to_owned()))
}

fn pairs(map: &Bound<'_, PyMapping>) -> PyResult<Vec<(String, AnyValue)>> {
    let mut out = Vec::new();
    for item in map.items()?.try_iter()? {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        out.push((key.str()?.to_str()?.to_owned(), any_value(&value)?));
    }
    Ok(out)
}

fn number_points(points: &Bound<'_, PyAny>) -> PyResult<Vec<NumberPoint>> {
    let mut out = Vec::new();
    for point in points.try_iter()? {
        let (attrs, start, time, value): (Bound<'_, PyAny>, u64, u64, Bound<'_, PyAny>) = point?.extract()?;
        let value = if value.is_instance_of::<pyo3::types::PyInt>() {
            Point::Int(value.extract()?)
        } else {
            Point::Double(value.extract()?)
        };
        out.push(NumberPoint {
            attributes: attributes(&attrs)?,
            start_unix_nano: start,
            time_unix_nano: time,
            value,
        });
    }
    Ok(out)
}

fn histogram_points(points: &Bound<'_, PyAny>) -> PyResult<Vec<HistogramPoint>> {
    let mut out = Vec::new();
    for point in points.try_iter()? {
        type Row<'py> = (Bound<'py, PyAny>, u64, u64, u64, f64, Vec<u64>, Vec<f64>, Option<f64>, Option<f64>);
        let (attrs, start, time, count, sum, bucket_counts, explicit_bounds, min, max): Row<'_> =
            point?.extract()?;
        out.push(HistogramPoint {
            attributes: attributes(&attrs)?,
            start_unix_nano: start,
            time_unix_nano: time,
            count,
            sum,
            bucket_counts,
            explicit_bounds,
            min,
            max,
        });
    }
    Ok(out)
}

fn attributes(value: &Bound<'_, PyAny>) -> PyResult<Vec<(String, AnyValue)>> {
    if value.is_none() {
        return Ok(Vec::new());
    }
    let map =
        value.cast::<PyMapping>().map_err(|_| PyTypeError::new_err("span attributes must be a mapping"))?;
    pairs(map)
}

/// Nesting deeper than this is treated as a value `json.dumps` cannot write (`"null"`).
const MAX_PAYLOAD_DEPTH: usize = 256;

/// `payload::truncate` of the redacted JSON text of `value` (`"null"` when it cannot be
/// written, as `redact_and_truncate`).
fn payload_text(value: &Bound<'_, PyAny>, max_bytes: Option<usize>) -> (String, bool) {
    let mut out = String::new();
    if write_payload(&mut out, value, 0).is_err() {
        out.clear();
        out.push_str("null");
    }
    payload::truncate(out, max_bytes)
}

/// Writes `value` as `json.dumps(redact(value), default=str, ensure_ascii=False)` does:
/// `", "` and `": "` separators, floats as Python's `repr`, `NaN` / `Infinity`, other objects
/// as their `str()`. Dict values under a sensitive key are `"[REDACTED]"`.
fn write_payload(out: &mut String, value: &Bound<'_, PyAny>, depth: usize) -> Result<(), ()> {
    use pyo3::types::{PyBool, PyFloat, PyInt};
    if depth > MAX_PAYLOAD_DEPTH {
        return Err(());
    }
    if value.is_none() {
        out.push_str("null");
    } else if let Ok(s) = value.cast::<PyString>() {
        match s.to_str() {
            Ok(text) => payload::write_py_str(out, text),
            Err(_) => payload::write_py_str(out, &s.to_string_lossy()), // lone surrogates
        }
    } else if let Ok(b) = value.cast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if let Ok(int) = value.cast::<PyInt>() {
        match int.extract::<i64>() {
            Ok(i) => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("{i}"));
            }
            Err(_) => {
                let int_type = value.py().get_type::<PyInt>();
                let text = int_type.call_method1("__repr__", (value,)).map_err(|_| ())?;
                out.push_str(&text.cast::<PyString>().map_err(|_| ())?.to_string_lossy());
            }
        }
    } else if let Ok(f) = value.cast::<PyFloat>() {
        write_float(out, f.value());
    } else if let Ok(dict) = value.cast::<PyDict>() {
        out.push('{');
        for (i, (key, item)) in dict.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let sensitive = match key.cast::<PyString>() {
                Ok(k) => {
                    let k = k.to_cow().unwrap_or_else(|_| k.to_string_lossy());
                    payload::write_py_str(out, &k);
                    payload::is_sensitive(&k)
                }
                Err(_) => {
                    write_key(out, &key)?;
                    false
                }
            };
            out.push_str(": ");
            if sensitive {
                payload::write_py_str(out, payload::REDACTED);
            } else {
                write_payload(out, &item, depth + 1)?;
            }
        }
        out.push('}');
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        out.push('[');
        for (i, item) in value.try_iter().map_err(|_| ())?.enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_payload(out, &item.map_err(|_| ())?, depth + 1)?;
        }
        out.push(']');
    } else {
        let text = value.str().map_err(|_| ())?;
        payload::write_py_str(out, &text.to_string_lossy());
    }
    Ok(())
}

/// A float as `json.dumps` writes it (`float.__repr__`, `NaN`, `Infinity`).
fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        payload::write_py_float(out, f);
    }
}

/// A dict key that is not a string, as `json.dumps` turns it into one (other kinds of key
/// make the whole value unwritable).
fn write_key(out: &mut String, key: &Bound<'_, PyAny>) -> Result<(), ()> {
    use pyo3::types::{PyBool, PyFloat, PyInt};
    let mut text = String::new();
    if key.is_none() {
        text.push_str("null");
    } else if key.is_instance_of::<PyBool>() || key.is_instance_of::<PyInt>() {
        write_payload(&mut text, key, 0)?;
    } else if key.is_instance_of::<PyFloat>() {
        write_float(&mut text, key.extract().map_err(|_| ())?);
    } else {
        return Err(());
    }
    payload::write_py_str(out, &text);
    Ok(())
}

/// Whether a payload's dict key is redacted: iii-helpers 0.25.0's rule, kept in one place for
/// the span's payload events and `iii_helpers.observability.redact`.
#[pyfunction]
pub fn is_sensitive_key(key: &str) -> bool {
    payload::is_sensitive(key)
}

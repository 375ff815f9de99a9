//! Worker resource gauges (protocol.md 10.4), sampled from the OS, and their `MTRC` form.
//!
//! The names are the Node SDK's, which the engine's `latest_metrics` reads. Python has no V8
//! heap, so the three heap gauges carry the nearest process figures (Linux, /proc/self/status):
//! `heap_used` = resident anonymous memory (`RssAnon`: where Python's objects, arenas and
//! malloc'd buffers live), `heap_total` = the data segment's virtual size (`VmData`: what the
//! allocator has reserved), `external` = resident file-backed memory (`RssFile`: the
//! interpreter, extension modules and mapped files). On macOS, without /proc, rss is the peak
//! resident size from `getrusage` and the heap, external and vms gauges are left out (the
//! engine treats every gauge as optional).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use super::otlp::{self, AnyValue};
use super::span::Scope;

/// One sample of the worker's gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerGauges {
    pub(crate) time_unix_nano: u64,
    pub(crate) cpu_percent: f64,
    pub(crate) cpu_user_micros: u64,
    pub(crate) cpu_system_micros: u64,
    pub(crate) memory_rss: u64,
    pub(crate) memory_vms: Option<u64>,
    pub(crate) memory_heap_used: Option<u64>,
    pub(crate) memory_heap_total: Option<u64>,
    pub(crate) memory_external: Option<u64>,
    pub(crate) uptime_seconds: u64,
    /// Supplied by the event loop's owner; `None` until it reports.
    pub(crate) event_loop_lag_ms: Option<f64>,
    pub(crate) worker_id: String,
}

/// One number of a gauge or sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    Int(i64),
    Double(f64),
}

impl Point {
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            // A number, never a string: the engine rejects the frame otherwise.
            Point::Int(v) => {
                let _ = write!(out, "\"asInt\":{v}");
            }
            Point::Double(v) => {
                out.extend_from_slice(b"\"asDouble\":");
                write_f64(out, v);
            }
        }
    }
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    let _ = serde_json::to_writer(&mut *out, &if v.is_finite() { v } else { 0.0 });
}

fn int(v: u64) -> Point {
    Point::Int(v.min(i64::MAX as u64) as i64)
}

impl WorkerGauges {
    fn points(&self) -> Vec<(&'static str, &'static str, Point)> {
        let mut points = vec![
            ("iii.worker.cpu.percent", "%", Point::Double(self.cpu_percent)),
            ("iii.worker.cpu.user_micros", "us", int(self.cpu_user_micros)),
            ("iii.worker.cpu.system_micros", "us", int(self.cpu_system_micros)),
            ("iii.worker.memory.rss", "By", int(self.memory_rss)),
        ];
        let optional = [
            ("iii.worker.memory.vms", self.memory_vms),
            ("iii.worker.memory.heap_used", self.memory_heap_used),
            ("iii.worker.memory.heap_total", self.memory_heap_total),
            ("iii.worker.memory.external", self.memory_external),
        ];
        points.extend(optional.into_iter().filter_map(|(name, v)| Some((name, "By", int(v?)))));
        points.push(("iii.worker.uptime_seconds", "s", int(self.uptime_seconds)));
        if let Some(lag) = self.event_loop_lag_ms {
            points.push(("iii.worker.event_loop.lag_ms", "ms", Point::Double(lag)));
        }
        points
    }

    /// Writes the metric objects of this sample (elements of `scopeMetrics[].metrics`),
    /// comma-separated.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let worker = AnyValue::Str(self.worker_id.clone());
        for (i, (name, unit, point)) in self.points().into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(
                out,
                "{{\"name\":\"{name}\",\"unit\":\"{unit}\",\"gauge\":{{\"dataPoints\":[{{\"attributes\":"
            );
            otlp::write_attributes(out, [("worker.id", &worker)]);
            out.push(b',');
            otlp::write_nanos(out, "timeUnixNano", self.time_unix_nano);
            out.push(b',');
            point.encode(out);
            out.extend_from_slice(b"}]}}");
        }
    }
}

/// A data point of the application's gauge or sum.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberPoint {
    pub attributes: Vec<(String, AnyValue)>,
    pub start_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: Point,
}

/// A data point of the application's histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub attributes: Vec<(String, AnyValue)>,
    pub start_unix_nano: u64,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: f64,
    pub bucket_counts: Vec<u64>,
    pub explicit_bounds: Vec<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AppData {
    Gauge(Vec<NumberPoint>),
    /// `temporality` as OTLP numbers it: 1 delta, 2 cumulative.
    Sum {
        points: Vec<NumberPoint>,
        monotonic: bool,
        temporality: u8,
    },
    Histogram {
        points: Vec<HistogramPoint>,
        temporality: u8,
    },
}

/// One collection of an instrument the application created (Python's opentelemetry-sdk
/// collects; this is its OTLP form).
#[derive(Debug, Clone, PartialEq)]
pub struct AppMetric {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub data: AppData,
    pub scope: Arc<Scope>,
}

fn write_point_head(out: &mut Vec<u8>, attributes: &[(String, AnyValue)], start: u64, time: u64) {
    out.extend_from_slice(b"{\"attributes\":");
    otlp::write_attributes(out, attributes.iter().map(|(k, v)| (k.as_str(), v)));
    out.push(b',');
    otlp::write_nanos(out, "startTimeUnixNano", start);
    out.push(b',');
    otlp::write_nanos(out, "timeUnixNano", time);
}

fn write_number_points(out: &mut Vec<u8>, points: &[NumberPoint]) {
    out.extend_from_slice(b"\"dataPoints\":[");
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_point_head(out, &p.attributes, p.start_unix_nano, p.time_unix_nano);
        out.push(b',');
        p.value.encode(out);
        out.push(b'}');
    }
    out.push(b']');
}

impl AppMetric {
    /// Writes the metric object (an element of `scopeMetrics[].metrics`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"name\":");
        otlp::write_str(out, &self.name);
        out.extend_from_slice(b",\"description\":");
        otlp::write_str(out, &self.description);
        out.extend_from_slice(b",\"unit\":");
        otlp::write_str(out, &self.unit);
        match &self.data {
            AppData::Gauge(points) => {
                out.extend_from_slice(b",\"gauge\":{");
                write_number_points(out, points);
            }
            AppData::Sum { points, monotonic, temporality } => {
                out.extend_from_slice(b",\"sum\":{");
                write_number_points(out, points);
                let _ = write!(out, ",\"aggregationTemporality\":{temporality},\"isMonotonic\":{monotonic}");
            }
            AppData::Histogram { points, temporality } => {
                out.extend_from_slice(b",\"histogram\":{\"dataPoints\":[");
                for (i, p) in points.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_point_head(out, &p.attributes, p.start_unix_nano, p.time_unix_nano);
                    // Counts as numbers, like asInt (the engine takes numbers or strings here).
                    let _ = write!(out, ",\"count\":{},\"sum\":", p.count);
                    write_f64(out, p.sum);
                    let _ = write!(out, ",\"bucketCounts\":{:?}", p.bucket_counts);
                    out.extend_from_slice(b",\"explicitBounds\":[");
                    for (j, b) in p.explicit_bounds.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_f64(out, *b);
                    }
                    out.push(b']');
                    for (key, v) in [("min", p.min), ("max", p.max)] {
                        if let Some(v) = v {
                            let _ = write!(out, ",\"{key}\":");
                            write_f64(out, v);
                        }
                    }
                    out.push(b'}');
                }
                let _ = write!(out, "],\"aggregationTemporality\":{temporality}");
            }
        }
        out.extend_from_slice(b"}}");
    }
}

/// What the exporter sends in `MTRC` frames.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetricItem {
    /// The worker gauges: one sample, several metrics, the SDK's scope.
    Worker(WorkerGauges),
    App(AppMetric),
}

impl MetricItem {
    pub(crate) fn scope(&self) -> Option<&Scope> {
        match self {
            MetricItem::Worker(_) => None,
            MetricItem::App(m) => Some(&m.scope),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MetricItem::Worker(g) => g.encode(out),
            MetricItem::App(m) => m.encode(out),
        }
    }
}

/// Samples the process. CPU percent is over the interval since the previous sample.
pub struct ProcessSampler {
    started: Instant,
    last: Option<(Instant, u64)>,
}

impl Default for ProcessSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessSampler {
    pub fn new() -> ProcessSampler {
        ProcessSampler { started: Instant::now(), last: None }
    }

    pub fn sample(&mut self, worker_id: &str, event_loop_lag_ms: Option<f64>) -> WorkerGauges {
        let (user, system, max_rss) = rusage();
        let now = Instant::now();
        let cpu_total = user + system;
        let (since, cpu_before) = self.last.unwrap_or((self.started, 0));
        let wall_micros = now.duration_since(since).as_micros().max(1) as f64;
        let cpu_percent = (cpu_total.saturating_sub(cpu_before) as f64 / wall_micros) * 100.0;
        self.last = Some((now, cpu_total));
        let memory = proc_memory();
        WorkerGauges {
            time_unix_nano: otlp::now_unix_nanos(),
            cpu_percent,
            cpu_user_micros: user,
            cpu_system_micros: system,
            memory_rss: memory.as_ref().map(|m| m.rss).unwrap_or(max_rss),
            memory_vms: memory.as_ref().map(|m| m.vms),
            memory_heap_used: memory.as_ref().map(|m| m.anon),
            memory_heap_total: memory.as_ref().map(|m| m.data),
            memory_external: memory.as_ref().map(|m| m.file),
            uptime_seconds: self.started.elapsed().as_secs(),
            event_loop_lag_ms,
            worker_id: worker_id.to_owned(),
        }
    }
}

/// (user micros, system micros, peak rss bytes) of this process.
fn rusage() -> (u64, u64, u64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0, 0, 0);
    }
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    // ru_maxrss is in KiB on Linux and in bytes on macOS.
    let max_rss =
        if cfg!(target_os = "macos") { usage.ru_maxrss as u64 } else { usage.ru_maxrss as u64 * 1024 };
    (micros(usage.ru_utime), micros(usage.ru_stime), max_rss)
}

struct ProcMemory {
    rss: u64,
    vms: u64,
    anon: u64,
    file: u64,
    data: u64,
}

fn proc_memory() -> Option<ProcMemory> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Reads the `kB` figures of /proc/<pid>/status.
fn parse_status(text: &str) -> Option<ProcMemory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))?;
        let kib: u64 = line[name.len() + 1..].split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(ProcMemory {
        rss: field("VmRSS")?,
        vms: field("VmSize")?,
        anon: field("RssAnon").unwrap_or(0),
        file: field("RssFile").unwrap_or(0),
        data: field("VmData").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_gauges_are_json_numbers_with_the_worker_id() {
        let gauges = ProcessSampler::new().sample("w-1", Some(1.25));
        let mut out = b"[".to_vec();
        gauges.encode(&mut out);
        out.push(b']');
        let metrics: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let find = |name: &str| metrics.as_array().unwrap().iter().find(|m| m["name"] == name).cloned();
        let rss = find("iii.worker.memory.rss").unwrap();
        let point = &rss["gauge"]["dataPoints"][0];
        assert!(point["asInt"].is_u64());
        assert!(point["asInt"].as_u64().unwrap() > 0);
        assert_eq!(
            point["attributes"][0],
            serde_json::json!({"key": "worker.id", "value": {"stringValue": "w-1"}})
        );
        assert!(find("iii.worker.cpu.user_micros").unwrap()["gauge"]["dataPoints"][0]["asInt"].is_u64());
        assert_eq!(find("iii.worker.event_loop.lag_ms").unwrap()["gauge"]["dataPoints"][0]["asDouble"], 1.25);
        assert!(find("iii.worker.cpu.percent").unwrap()["gauge"]["dataPoints"][0]["asDouble"].is_f64());
        assert!(find("iii.worker.uptime_seconds").is_some());
        #[cfg(target_os = "linux")]
        for name in [
            "iii.worker.memory.vms",
            "iii.worker.memory.heap_used",
            "iii.worker.memory.heap_total",
            "iii.worker.memory.external",
        ] {
            assert!(find(name).unwrap()["gauge"]["dataPoints"][0]["asInt"].is_u64(), "{name}");
        }
    }

    #[test]
    fn lag_is_left_out_until_reported() {
        let gauges = ProcessSampler::new().sample("w", None);
        let mut out = b"[".to_vec();
        gauges.encode(&mut out);
        out.push(b']');
        assert!(!String::from_utf8(out).unwrap().contains("event_loop"));
    }

    #[test]
    fn proc_status_figures_are_read_in_bytes() {
        let text = "Name:\tpython\nVmSize:\t  1000 kB\nVmData:\t 300 kB\nVmRSS:\t 200 kB\nRssAnon:\t 150 kB\nRssFile:\t 50 kB\n";
        let m = parse_status(text).unwrap();
        assert_eq!((m.vms, m.data, m.rss, m.anon, m.file), (1_024_000, 307_200, 204_800, 153_600, 51_200));
        assert!(parse_status("garbage").is_none());
    }
}

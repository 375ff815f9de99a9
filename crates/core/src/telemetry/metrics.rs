//! Worker resource gauges (docs/protocol.md 10.4), sampled from the OS, and their `MTRC` form.
//!
//! This sampler is the only source of these figures: the exporter sends them, and Python's
//! `iii.worker_metrics` / `iii.otel_worker_gauges` read them through the bindings, so a gauge
//! name has one meaning and unit everywhere ([`PROCESS_GAUGES`]).
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
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::otlp::{self, AnyValue};
use super::span::Scope;

/// One worker gauge as the engine and OpenTelemetry see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaugeSpec {
    pub name: &'static str,
    /// The field of the engine's `latest_metrics` (and of Python's `WorkerMetrics`) it fills.
    pub field: &'static str,
    pub unit: &'static str,
    pub description: &'static str,
    /// The engine's `latest_metrics` reads it as an integer (docs/protocol.md 6.2).
    integer: bool,
}

const fn gauge(
    name: &'static str,
    field: &'static str,
    unit: &'static str,
    description: &'static str,
    integer: bool,
) -> GaugeSpec {
    GaugeSpec { name, field, unit, description, integer }
}

/// The gauges a [`WorkerGauges`] sample holds, in the order of [`WorkerGauges::values`].
pub const PROCESS_GAUGES: [GaugeSpec; 9] = [
    gauge(
        "iii.worker.cpu.percent",
        "cpu_percent",
        "%",
        "Worker CPU usage since the previous sample, percent of one core (at most 100)",
        false,
    ),
    gauge(
        "iii.worker.cpu.user_micros",
        "cpu_user_micros",
        "us",
        "Worker CPU user time in microseconds",
        true,
    ),
    gauge(
        "iii.worker.cpu.system_micros",
        "cpu_system_micros",
        "us",
        "Worker CPU system time in microseconds",
        true,
    ),
    gauge("iii.worker.memory.rss", "memory_rss", "By", "Worker resident set size in bytes", true),
    gauge("iii.worker.memory.vms", "memory_vms", "By", "Worker virtual memory size in bytes", true),
    gauge(
        "iii.worker.memory.heap_used",
        "memory_heap_used",
        "By",
        "Worker resident anonymous memory (RssAnon) in bytes",
        true,
    ),
    gauge(
        "iii.worker.memory.heap_total",
        "memory_heap_total",
        "By",
        "Worker data segment size (VmData) in bytes",
        true,
    ),
    gauge(
        "iii.worker.memory.external",
        "memory_external",
        "By",
        "Worker resident file-backed memory (RssFile) in bytes",
        true,
    ),
    gauge("iii.worker.uptime_seconds", "uptime_seconds", "s", "Worker process uptime in seconds", true),
];

/// Reported by the event loop's owner, not sampled.
pub const EVENT_LOOP_LAG: GaugeSpec = gauge(
    "iii.worker.event_loop.lag_ms",
    "event_loop_lag_ms",
    "ms",
    "Worker event loop lag in milliseconds",
    false,
);

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
    /// Since the process started (Linux; elsewhere since it first sampled itself).
    pub(crate) uptime: Duration,
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
    pub fn time_unix_nano(&self) -> u64 {
        self.time_unix_nano
    }

    /// The figures of [`PROCESS_GAUGES`], in its order; `None` where the OS does not give one.
    pub fn values(&self) -> [Option<Point>; 9] {
        [
            Some(Point::Double(self.cpu_percent)),
            Some(int(self.cpu_user_micros)),
            Some(int(self.cpu_system_micros)),
            Some(int(self.memory_rss)),
            self.memory_vms.map(int),
            self.memory_heap_used.map(int),
            self.memory_heap_total.map(int),
            self.memory_external.map(int),
            Some(Point::Double(self.uptime.as_secs_f64())),
        ]
    }

    /// Writes the metric objects of this sample (elements of `scopeMetrics[].metrics`),
    /// comma-separated.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let worker = AnyValue::Str(self.worker_id.clone());
        let lag = self.event_loop_lag_ms.map(|ms| (&EVENT_LOOP_LAG, Some(Point::Double(ms))));
        let all = PROCESS_GAUGES.iter().zip(self.values()).chain(lag);
        for (i, (spec, point)) in all.filter_map(|(spec, v)| Some((spec, v?))).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let point = match point {
                // Whole units (uptime: seconds): the engine reads an integer there.
                Point::Double(v) if spec.integer => Point::Int(v as i64),
                p => p,
            };
            let (name, unit, description) = (spec.name, spec.unit, spec.description);
            let _ = write!(
                out,
                "{{\"name\":\"{name}\",\"description\":\"{description}\",\"unit\":\"{unit}\",\"gauge\":{{\"dataPoints\":[{{\"attributes\":"
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

/// Samples the process. CPU percent covers the time since the previous sample (the first one:
/// since the sampler was made or the point given to [`ProcessSampler::after`]). It is capped at
/// 100, as the official SDKs cap theirs, so Python's `WorkerMetrics.cpu_percent` keeps its
/// documented 0-100 range and the gauge means the same.
pub struct ProcessSampler {
    /// Uptime and CPU micros (user + system) at the previous sample.
    last: (Duration, u64),
}

impl Default for ProcessSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessSampler {
    pub fn new() -> ProcessSampler {
        let (user, system, _) = rusage();
        ProcessSampler { last: (uptime(), user + system) }
    }

    /// A sampler whose first sample covers the time since the process was `uptime` old and had
    /// used `cpu_micros` of CPU (an earlier sample's figures).
    pub fn after(uptime: Duration, cpu_micros: u64) -> ProcessSampler {
        ProcessSampler { last: (uptime, cpu_micros) }
    }

    pub fn sample(&mut self, worker_id: &str, event_loop_lag_ms: Option<f64>) -> WorkerGauges {
        let (user, system, max_rss) = rusage();
        let uptime = uptime();
        let cpu_total = user + system;
        let (since, cpu_before) = self.last;
        let wall_micros = uptime.saturating_sub(since).as_micros().max(1) as f64;
        let cpu_percent = (cpu_total.saturating_sub(cpu_before) as f64 / wall_micros * 100.0).min(100.0);
        self.last = (uptime, cpu_total);
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
            uptime,
            event_loop_lag_ms,
            worker_id: worker_id.to_owned(),
        }
    }
}

/// How long this process has run: one clock for every sampler, so the exporter's gauge and
/// Python's `WorkerMetrics` agree.
fn uptime() -> Duration {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let now = Instant::now();
            process_age().and_then(|age| now.checked_sub(age)).unwrap_or(now)
        })
        .elapsed()
}

/// The process's age from its start time in /proc/self/stat (clock ticks after boot).
#[cfg(target_os = "linux")]
fn process_age() -> Option<Duration> {
    let ticks = parse_start_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    // SAFETY: sysconf and clock_gettime only read the clock or write into `now`.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|hz| *hz > 0)?;
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    let since_boot = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    since_boot.checked_sub(Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz))
}

/// Without /proc, uptime counts from the process's first sample.
#[cfg(not(target_os = "linux"))]
fn process_age() -> Option<Duration> {
    None
}

/// Field 22 (start time) of /proc/<pid>/stat.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_start_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from its last `)`.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
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

    fn sample(uptime: Duration) -> WorkerGauges {
        WorkerGauges {
            time_unix_nano: 1,
            cpu_percent: 12.5,
            cpu_user_micros: 2,
            cpu_system_micros: 3,
            memory_rss: 4,
            memory_vms: Some(5),
            memory_heap_used: Some(6),
            memory_heap_total: Some(7),
            memory_external: None,
            uptime,
            event_loop_lag_ms: None,
            worker_id: "w".into(),
        }
    }

    #[test]
    fn each_gauge_is_sent_with_the_name_unit_and_description_of_its_spec() {
        let gauges = sample(Duration::from_millis(2_700));
        let mut out = b"[".to_vec();
        gauges.encode(&mut out);
        out.push(b']');
        let metrics: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let sent: Vec<_> = metrics.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        let expected: Vec<_> =
            PROCESS_GAUGES.iter().map(|g| g.name).filter(|n| *n != "iii.worker.memory.external").collect();
        assert_eq!(sent, expected, "a gauge the OS does not give is left out");
        for (metric, spec) in metrics
            .as_array()
            .unwrap()
            .iter()
            .zip(PROCESS_GAUGES.iter().filter(|g| g.field != "memory_external"))
        {
            assert_eq!(
                (metric["unit"].as_str(), metric["description"].as_str()),
                (Some(spec.unit), Some(spec.description))
            );
        }
        let point = |name: &str| {
            metrics.as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["gauge"]["dataPoints"][0]
                .clone()
        };
        assert_eq!(point("iii.worker.uptime_seconds")["asInt"], 2, "whole seconds on the wire");
        assert_eq!(point("iii.worker.cpu.percent")["asDouble"], 12.5);
        assert_eq!(gauges.values()[8], Some(Point::Double(2.7)), "exact for Python");
    }

    #[test]
    fn cpu_percent_covers_the_time_since_the_given_point_and_stops_at_100() {
        // All of the process's CPU time within a few microseconds of wall time.
        let busy = ProcessSampler::after(uptime(), 0).sample("w", None);
        assert_eq!(busy.cpu_percent, 100.0);
        let mut sampler = ProcessSampler::new();
        let first = sampler.sample("w", None);
        let second = sampler.sample("w", None);
        assert!((0.0..=100.0).contains(&first.cpu_percent) && (0.0..=100.0).contains(&second.cpu_percent));
        assert!(second.uptime >= first.uptime);
    }

    #[test]
    fn uptime_is_the_processes_and_shared_by_every_sampler() {
        let old = ProcessSampler::new().sample("w", None);
        let new = ProcessSampler::new().sample("w", None);
        assert!(new.uptime >= old.uptime);
        #[cfg(target_os = "linux")]
        {
            // Ticks are 10 ms; the clock is the process's, not the sampler's.
            let (age, up) = (process_age().expect("/proc/self/stat has the start time"), uptime());
            assert!(up.abs_diff(age) < Duration::from_millis(50), "{up:?} vs {age:?}");
        }
        let stat = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 3 1 0 0 20 0 1 0 98765 1000 200";
        assert_eq!(parse_start_ticks(stat), Some(98765));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[test]
    fn proc_status_figures_are_read_in_bytes() {
        let text = "Name:\tpython\nVmSize:\t  1000 kB\nVmData:\t 300 kB\nVmRSS:\t 200 kB\nRssAnon:\t 150 kB\nRssFile:\t 50 kB\n";
        let m = parse_status(text).unwrap();
        assert_eq!((m.vms, m.data, m.rss, m.anon, m.file), (1_024_000, 307_200, 204_800, 153_600, 51_200));
        assert!(parse_status("garbage").is_none());
    }
}

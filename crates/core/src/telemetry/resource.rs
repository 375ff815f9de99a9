//! OpenTelemetry settings with the official SDK's environment fallbacks, and the resource
//! attributes every frame carries (docs/protocol.md 10.2).

use std::time::Duration;

use super::context::parse_baggage;
use super::otlp::{self, AnyValue};

pub(crate) const SDK_NAME: &str = "iii-python-sdk";
pub(crate) const DEFAULT_SERVICE_NAME: &str = "iii-python-sdk";

/// What the user set explicitly (`OtelConfig`); `None` falls back to the environment, then to
/// the default.
#[derive(Debug, Clone, Default)]
pub struct OtelOverrides {
    pub enabled: Option<bool>,
    pub service_name: Option<String>,
    pub service_version: Option<String>,
    pub service_namespace: Option<String>,
    pub service_instance_id: Option<String>,
    pub spans_flush_interval_ms: Option<u64>,
    pub logs_enabled: Option<bool>,
    pub logs_flush_interval_ms: Option<u64>,
    pub logs_batch_size: Option<usize>,
    pub metrics_enabled: Option<bool>,
    pub metrics_export_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OtelSettings {
    pub enabled: bool,
    pub service_name: String,
    pub(crate) service_version: String,
    pub(crate) service_namespace: Option<String>,
    pub(crate) service_instance_id: String,
    /// How long finished spans wait before they are sent (`OTEL_SPANS_FLUSH_INTERVAL_MS`).
    pub(crate) spans_flush_interval: Duration,
    pub logs_enabled: bool,
    pub(crate) logs_flush_interval: Duration,
    /// Logs waiting that trigger an early flush.
    pub(crate) logs_batch_size: usize,
    pub(crate) metrics_enabled: bool,
    pub(crate) metrics_export_interval: Duration,
    /// From `OTEL_RESOURCE_ATTRIBUTES`; the attributes above take precedence.
    pub(crate) extra_resource: Vec<(String, String)>,
}

/// `OTEL_ENABLED` values that switch telemetry off (as the official SDK).
pub(crate) fn env_disables(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no" | "off")
}

impl OtelSettings {
    /// Resolves `explicit`, then `env(name)`, then the defaults. Integer variables that do not
    /// parse (or are below their minimum) are ignored, as the official SDK does.
    pub fn resolve(explicit: OtelOverrides, env: impl Fn(&str) -> Option<String>) -> OtelSettings {
        let text = |value: Option<String>, var: &str| {
            value.filter(|v| !v.is_empty()).or_else(|| env(var).filter(|v| !v.is_empty()))
        };
        let int = |value: Option<u64>, var: &str, default: u64, min: u64| {
            value.unwrap_or_else(|| {
                env(var).and_then(|v| v.trim().parse::<u64>().ok()).filter(|v| *v >= min).unwrap_or(default)
            })
        };
        let enabled =
            explicit.enabled.unwrap_or_else(|| !env("OTEL_ENABLED").is_some_and(|v| env_disables(&v)));
        OtelSettings {
            enabled,
            service_name: text(explicit.service_name, "OTEL_SERVICE_NAME")
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
            service_version: text(explicit.service_version, "SERVICE_VERSION")
                .unwrap_or_else(|| "unknown".into()),
            service_namespace: text(explicit.service_namespace, "SERVICE_NAMESPACE"),
            service_instance_id: text(explicit.service_instance_id, "SERVICE_INSTANCE_ID")
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            // NOTE: 100 ms as iii-helpers 0.25.0's span batch delay (it was 500 ms here): spans
            // reach the engine's trace view as soon as they do with the official SDK, and a
            // busy worker still packs a whole interval's spans into one frame.
            spans_flush_interval: Duration::from_millis(
                int(explicit.spans_flush_interval_ms, "OTEL_SPANS_FLUSH_INTERVAL_MS", 100, 1).max(1),
            ),
            logs_enabled: explicit.logs_enabled.unwrap_or(true),
            logs_flush_interval: Duration::from_millis(int(
                explicit.logs_flush_interval_ms,
                "OTEL_LOGS_FLUSH_INTERVAL_MS",
                100,
                0,
            )),
            // NOTE: the official default batch size is 1, which sends one frame per log
            // record (a burst of 10,000 records was 10,000 frames). Here the size only says
            // how many waiting records flush early, and a flush packs every waiting record
            // into as few frames as the frame bound allows; unset, it is 512, so records
            // written within one flush interval (100 ms) share a frame.
            logs_batch_size: int(explicit.logs_batch_size.map(|v| v as u64), "OTEL_LOGS_BATCH_SIZE", 512, 1)
                as usize,
            metrics_enabled: explicit.metrics_enabled.unwrap_or(true),
            metrics_export_interval: Duration::from_millis(
                explicit.metrics_export_interval_ms.unwrap_or(60_000).max(1),
            ),
            extra_resource: env("OTEL_RESOURCE_ATTRIBUTES").map(|v| parse_baggage(&v)).unwrap_or_default(),
        }
    }

    /// The resource attributes, `OTEL_RESOURCE_ATTRIBUTES` first and the SDK's own overriding.
    pub fn resource_attributes(&self) -> Vec<(String, AnyValue)> {
        let mut attrs: Vec<(String, AnyValue)> = vec![
            ("service.name".into(), self.service_name.clone().into()),
            ("service.version".into(), self.service_version.clone().into()),
            ("service.instance.id".into(), self.service_instance_id.clone().into()),
            ("telemetry.sdk.name".into(), SDK_NAME.into()),
            ("telemetry.sdk.language".into(), "python".into()),
            ("telemetry.sdk.version".into(), env!("CARGO_PKG_VERSION").into()),
        ];
        if let Some(ns) = &self.service_namespace {
            attrs.push(("service.namespace".into(), ns.clone().into()));
        }
        let own: Vec<String> = attrs.iter().map(|(k, _)| k.clone()).collect();
        let extra = self.extra_resource.iter().filter(|(k, _)| !own.contains(k));
        let mut all: Vec<(String, AnyValue)> = extra.map(|(k, v)| (k.clone(), v.clone().into())).collect();
        all.extend(attrs);
        all
    }

    /// `{"attributes":[...]}`, encoded once per exporter.
    pub fn resource_json(&self) -> Vec<u8> {
        let attrs = self.resource_attributes();
        let mut out = b"{\"attributes\":".to_vec();
        otlp::write_attributes(&mut out, attrs.iter().map(|(k, v)| (k.as_str(), v)));
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_without_environment() {
        let s = OtelSettings::resolve(OtelOverrides::default(), env_of(&[]));
        assert!(s.enabled && s.logs_enabled && s.metrics_enabled);
        assert_eq!(s.service_name, "iii-python-sdk");
        assert_eq!(s.service_version, "unknown");
        assert_eq!(s.service_namespace, None);
        assert!(uuid::Uuid::parse_str(&s.service_instance_id).is_ok());
        assert_eq!(s.logs_flush_interval, Duration::from_millis(100));
        assert_eq!(s.spans_flush_interval, Duration::from_millis(100));
        assert_eq!(s.logs_batch_size, 512);
        assert_eq!(s.metrics_export_interval, Duration::from_secs(60));
    }

    #[test]
    fn environment_fills_what_is_not_set_and_explicit_wins() {
        let env = env_of(&[
            ("OTEL_SERVICE_NAME", "env-svc"),
            ("SERVICE_VERSION", "1.2"),
            ("SERVICE_NAMESPACE", "ns"),
            ("SERVICE_INSTANCE_ID", "inst"),
            ("OTEL_LOGS_FLUSH_INTERVAL_MS", "250"),
            ("OTEL_LOGS_BATCH_SIZE", "0"),
            ("OTEL_SPANS_FLUSH_INTERVAL_MS", "40"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.name=ignored"),
        ]);
        let s = OtelSettings::resolve(
            OtelOverrides { service_version: Some("9".into()), ..Default::default() },
            env,
        );
        assert_eq!((s.service_name.as_str(), s.service_version.as_str()), ("env-svc", "9"));
        assert_eq!(s.service_namespace.as_deref(), Some("ns"));
        assert_eq!(s.service_instance_id, "inst");
        assert_eq!(s.logs_flush_interval, Duration::from_millis(250));
        assert_eq!(s.logs_batch_size, 512, "a batch size below 1 is ignored");
        assert_eq!(s.spans_flush_interval, Duration::from_millis(40));
        let explicit = OtelOverrides { spans_flush_interval_ms: Some(7), ..Default::default() };
        let s7 = OtelSettings::resolve(explicit, env_of(&[("OTEL_SPANS_FLUSH_INTERVAL_MS", "40")]));
        assert_eq!(s7.spans_flush_interval, Duration::from_millis(7));
        let attrs = s.resource_attributes();
        let get =
            |k: &str| attrs.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
        assert_eq!(get("service.name"), vec![AnyValue::from("env-svc")]);
        assert_eq!(get("deployment.environment"), vec![AnyValue::from("prod")]);
        assert_eq!(get("telemetry.sdk.language"), vec![AnyValue::from("python")]);
        assert_eq!(get("service.namespace"), vec![AnyValue::from("ns")]);
    }

    #[test]
    fn otel_enabled_switches() {
        for off in ["false", "0", "no", "OFF", " False "] {
            assert!(
                !OtelSettings::resolve(OtelOverrides::default(), env_of(&[("OTEL_ENABLED", off)])).enabled
            );
        }
        assert!(OtelSettings::resolve(OtelOverrides::default(), env_of(&[("OTEL_ENABLED", "yes")])).enabled);
        let explicit = OtelOverrides { enabled: Some(true), ..Default::default() };
        assert!(OtelSettings::resolve(explicit, env_of(&[("OTEL_ENABLED", "off")])).enabled);
    }
}

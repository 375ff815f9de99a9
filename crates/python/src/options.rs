//! `InitOptions` as the core reads it: extracted once from the Python object (its attributes,
//! by derived extraction) and checked here, before anything is started.

use std::collections::HashMap;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use iii_core::connection::ConnectionConfig;
use iii_core::telemetry::resource::OtelOverrides;

/// A Python `int` that is not a `bool` (`True` is an int to Python, never a size or a timeout).
pub struct Int(i64);

impl<'a, 'py> FromPyObject<'a, 'py> for Int {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyTypeError::new_err("expected an integer, not a bool"));
        }
        Ok(Int(obj.extract()?))
    }
}

#[derive(FromPyObject)]
pub struct ReconnectionConfig {
    initial_delay_ms: i64,
    max_delay_ms: i64,
    backoff_multiplier: f64,
    jitter_factor: f64,
    max_retries: i64,
}

#[derive(FromPyObject)]
pub struct InitOptions {
    invocation_timeout_ms: Int,
    max_message_size: Int,
    connect_timeout_ms: Int,
    ping_interval_ms: Int,
    idle_timeout_ms: Int,
    offline_queue_limit: Int,
    headers: Option<HashMap<String, String>>,
    reconnection_config: Option<ReconnectionConfig>,
}

fn positive(name: &str, Int(v): &Int) -> PyResult<u64> {
    u64::try_from(*v).ok().filter(|v| *v > 0).ok_or_else(|| {
        PyValueError::new_err(format!("InitOptions.{name} must be a positive integer, not {v}"))
    })
}

impl InitOptions {
    /// The connection settings for `url`, or a `ValueError` naming the first bad option.
    pub fn connection_config(self, url: String) -> PyResult<ConnectionConfig> {
        positive("invocation_timeout_ms", &self.invocation_timeout_ms)?;
        let ms = |name, v| positive(name, v).map(Duration::from_millis);
        let mut config = ConnectionConfig::new(url);
        config.max_message_size = positive("max_message_size", &self.max_message_size)? as usize;
        config.connect_timeout = ms("connect_timeout_ms", &self.connect_timeout_ms)?;
        config.ping_interval = ms("ping_interval_ms", &self.ping_interval_ms)?;
        config.idle_timeout = ms("idle_timeout_ms", &self.idle_timeout_ms)?;
        let Int(limit) = self.offline_queue_limit;
        config.offline_queue_limit = usize::try_from(limit).map_err(|_| {
            PyValueError::new_err(format!(
                "InitOptions.offline_queue_limit must be a non-negative integer, not {limit}"
            ))
        })?;
        config.headers = self.headers.unwrap_or_default().into_iter().collect();
        // III_TOKEN (iii-sdk 0.25.0): a bearer token on the upgrade, unless one is given.
        let token = std::env::var("III_TOKEN").unwrap_or_default();
        let has_auth = config.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if !token.trim().is_empty() && !has_auth {
            config.headers.push(("Authorization".into(), format!("Bearer {}", token.trim())));
        }
        if let Some(r) = self.reconnection_config {
            if r.initial_delay_ms < 0 || r.max_delay_ms < 0 {
                return Err(PyValueError::new_err("ReconnectionConfig delays must not be negative"));
            }
            if r.backoff_multiplier < 1.0 {
                let v = r.backoff_multiplier;
                return Err(PyValueError::new_err(format!(
                    "ReconnectionConfig.backoff_multiplier must be at least 1, not {v}"
                )));
            }
            if !(0.0..=1.0).contains(&r.jitter_factor) {
                let v = r.jitter_factor;
                return Err(PyValueError::new_err(format!(
                    "ReconnectionConfig.jitter_factor must be between 0 and 1, not {v}"
                )));
            }
            if r.max_retries < -1 {
                let v = r.max_retries;
                return Err(PyValueError::new_err(format!(
                    "ReconnectionConfig.max_retries must be -1 (forever) or more, not {v}"
                )));
            }
            let p = &mut config.reconnect;
            p.initial_delay_ms = r.initial_delay_ms as u64;
            p.max_delay_ms = r.max_delay_ms as u64;
            p.backoff_multiplier = r.backoff_multiplier;
            p.jitter_factor = r.jitter_factor;
            p.max_retries = r.max_retries;
        }
        Ok(config)
    }
}

/// `OtelConfig` as the exporter reads it (its attributes, by derived extraction); unset fields
/// fall back to the environment and the defaults (`OtelSettings::resolve`).
#[derive(FromPyObject)]
pub struct OtelConfig {
    enabled: Option<bool>,
    service_name: Option<String>,
    service_version: Option<String>,
    service_namespace: Option<String>,
    service_instance_id: Option<String>,
    spans_flush_interval_ms: Option<u64>,
    logs_enabled: Option<bool>,
    logs_flush_interval_ms: Option<u64>,
    logs_batch_size: Option<usize>,
    metrics_enabled: Option<bool>,
    metrics_export_interval_ms: Option<u64>,
}

impl OtelConfig {
    /// The exporter's overrides; the worker gauges and metrics only when `metrics` too
    /// (`InitOptions.enable_metrics_reporting`).
    pub fn overrides(self, metrics: bool) -> OtelOverrides {
        OtelOverrides {
            enabled: self.enabled,
            service_name: self.service_name,
            service_version: self.service_version,
            service_namespace: self.service_namespace,
            service_instance_id: self.service_instance_id,
            spans_flush_interval_ms: self.spans_flush_interval_ms,
            logs_enabled: self.logs_enabled,
            logs_flush_interval_ms: self.logs_flush_interval_ms,
            logs_batch_size: self.logs_batch_size,
            metrics_enabled: Some(self.metrics_enabled.unwrap_or(true) && metrics),
            metrics_export_interval_ms: self.metrics_export_interval_ms,
        }
    }
}

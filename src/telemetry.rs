//! OpenTelemetry trace export: the `[telemetry]` table, and the OTLP/HTTP exporter behind it.
//!
//! Its one job is to turn the `tracing` spans capgate already opens (one per `tools/call`,
//! carrying the decision) into OTLP spans sent to a collector, when, and only when, the
//! configuration names an endpoint. Without `telemetry.otlp_endpoint` nothing here runs: no
//! exporter, no layer, no thread.
//!
//! Spans leave through a batch processor on its own thread, so a call never waits for the
//! collector; a full queue drops spans, and a failed export is logged as a warning (once per
//! outage) and never reaches a call. [`Telemetry::shutdown`] flushes what is queued when the
//! gateway stops.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use serde::Deserialize;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The service name spans carry when `service_name` is not configured.
pub const DEFAULT_SERVICE_NAME: &str = "capgate";

/// The OTLP/HTTP path for traces, appended to a base endpoint (as the OTLP exporter spec does
/// for `OTEL_EXPORTER_OTLP_ENDPOINT`).
const TRACES_PATH: &str = "/v1/traces";

/// How long shutdown waits for the last batch to reach the collector.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The `[telemetry]` table as written in `capgate.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryTable {
    /// The collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`; absent: no export.
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    /// Extra request headers (a collector's API key, for instance).
    pub headers: BTreeMap<String, String>,
    /// The fraction of calls traced, 0.0 to 1.0 (default 1.0).
    pub sample_ratio: Option<f64>,
}

/// Telemetry settings, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// `None`: no exporter at all.
    pub otlp: Option<OtlpExport>,
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpExport {
    /// The full traces URL spans are POSTed to (`.../v1/traces`).
    pub traces_url: String,
    pub service_name: String,
    pub headers: BTreeMap<String, String>,
    pub sample_ratio: f64,
}

/// A `[telemetry]` value that cannot work; `key` is relative to the table.
#[derive(Debug, thiserror::Error)]
#[error("`telemetry.{key}`: {problem}. Fix: {fix}")]
pub struct InvalidTelemetryConfig {
    pub key: String,
    pub problem: String,
    pub fix: &'static str,
}

/// The exporter could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: cannot build the OTLP exporter for {endpoint}: {source}. Fix: check `telemetry.otlp_endpoint` and `telemetry.headers`")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

impl TelemetryConfig {
    /// Validates the table: no endpoint means no export; anything else present must be usable.
    pub fn from_table(table: TelemetryTable) -> Result<Self, InvalidTelemetryConfig> {
        let invalid = |key: &str, problem: String, fix: &'static str| InvalidTelemetryConfig {
            key: key.to_string(),
            problem,
            fix,
        };
        let Some(endpoint) = table.otlp_endpoint else {
            return Ok(Self { otlp: None });
        };
        let traces_url = traces_url(&endpoint).map_err(|problem| {
            invalid(
                "otlp_endpoint",
                problem,
                "use the collector's OTLP/HTTP URL, e.g. \"http://127.0.0.1:4318\"",
            )
        })?;
        let service_name = table
            .service_name
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        if service_name.trim().is_empty() {
            return Err(invalid(
                "service_name",
                "the service name is empty".into(),
                "name the service spans are reported under, or omit the key for \"capgate\"",
            ));
        }
        for (name, value) in &table.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    &format!("headers.{name}"),
                    "is not a valid HTTP header name".into(),
                    "use letters, digits and '-' only",
                ));
            }
            // The value may be a credential: the message never repeats it.
            if http::HeaderValue::from_str(value).is_err() {
                return Err(invalid(
                    &format!("headers.{name}"),
                    "the value is not a valid HTTP header value".into(),
                    "use visible ASCII without line breaks",
                ));
            }
        }
        let sample_ratio = table.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(invalid(
                "sample_ratio",
                format!("{sample_ratio} is not a fraction"),
                "use a number from 0.0 (no calls traced) to 1.0 (every call)",
            ));
        }
        Ok(Self {
            otlp: Some(OtlpExport {
                traces_url,
                service_name,
                headers: table.headers,
                sample_ratio,
            }),
        })
    }
}

/// The traces URL for a configured endpoint: a base URL gets `/v1/traces`; a URL that already
/// ends in it is used as given.
fn traces_url(endpoint: &str) -> Result<String, String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| format!("`{endpoint}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "`{endpoint}` uses scheme `{other}`; OTLP/HTTP needs http or https"
            ))
        }
        None => return Err(format!("`{endpoint}` has no http:// or https:// scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{endpoint}` names no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{endpoint}` carries a query string"));
    }
    let trimmed = endpoint.trim_end_matches('/');
    Ok(if uri.path().ends_with(TRACES_PATH) {
        trimmed.to_string()
    } else {
        format!("{trimmed}{TRACES_PATH}")
    })
}

/// A running exporter: the tracer provider whose batch thread sends spans to the collector.
pub struct Telemetry {
    provider: SdkTracerProvider,
    traces_url: String,
}

impl Telemetry {
    /// Starts the exporter when the configuration names an endpoint; `None` otherwise.
    ///
    /// Call it outside any async runtime: the HTTP client the exporter builds runs its own.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Self>, TelemetryError> {
        let Some(otlp) = &config.otlp else {
            return Ok(None);
        };
        let headers: HashMap<String, String> = otlp
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(otlp.traces_url.clone())
            .with_headers(headers)
            .build()
            .map_err(|source| TelemetryError::Exporter {
                endpoint: otlp.traces_url.clone(),
                source,
            })?;
        let sampler = if otlp.sample_ratio >= 1.0 {
            Sampler::AlwaysOn
        } else {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otlp.sample_ratio)))
        };
        let resource = Resource::builder()
            .with_service_name(otlp.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(WarnOnFailure::new(exporter, otlp.traces_url.clone()))
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        Ok(Some(Self {
            provider,
            traces_url: otlp.traces_url.clone(),
        }))
    }

    /// The URL spans are sent to.
    pub fn traces_url(&self) -> &str {
        &self.traces_url
    }

    /// The `tracing` layer that turns capgate's spans (and the events inside them) into OTLP
    /// spans. Only capgate's own spans at INFO and above are exported, whatever the log filter
    /// says: dependencies' spans (the HTTP stack, including the exporter's own requests) never
    /// are.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("capgate"))
            .with_threads(false)
            .with_filter(Targets::new().with_target("capgate", LevelFilter::INFO))
    }

    /// Flushes queued spans and stops the exporter; a collector that cannot be reached is
    /// logged, not returned: shutdown goes on either way.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(
                target: "capgate::telemetry",
                endpoint = %self.traces_url,
                %error,
                "OTLP exporter shutdown: queued spans may be lost"
            );
        }
    }
}

/// Wraps the OTLP exporter so a failed export becomes one warning per outage (and an info line
/// when exports work again) instead of an error per batch.
#[derive(Debug)]
struct WarnOnFailure<E> {
    inner: E,
    traces_url: String,
    failing: AtomicBool,
}

impl<E> WarnOnFailure<E> {
    fn new(inner: E, traces_url: String) -> Self {
        Self {
            inner,
            traces_url,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for WarnOnFailure<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "capgate::telemetry",
                        endpoint = %self.traces_url,
                        %error,
                        spans,
                        "OTLP export failed; spans are dropped until the collector answers (calls are unaffected)"
                    );
                } else {
                    tracing::debug!(target: "capgate::telemetry", %error, spans, "OTLP export failed again");
                }
            }
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "capgate::telemetry", endpoint = %self.traces_url, "OTLP export works again");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml_text: &str) -> TelemetryTable {
        toml::from_str(toml_text).expect("a [telemetry] table")
    }

    #[test]
    fn no_endpoint_means_no_exporter() {
        let config = TelemetryConfig::from_table(TelemetryTable::default()).expect("valid");
        assert_eq!(config.otlp, None);
        assert!(Telemetry::start(&config)
            .expect("nothing to build")
            .is_none());
        let config = TelemetryConfig::from_table(table("service_name = \"gw\"")).expect("valid");
        assert_eq!(config.otlp, None);
    }

    #[test]
    fn a_base_endpoint_gets_the_traces_path_and_defaults() {
        let config =
            TelemetryConfig::from_table(table("otlp_endpoint = \"http://127.0.0.1:4318/\""))
                .expect("valid");
        let otlp = config.otlp.expect("an exporter");
        assert_eq!(otlp.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(otlp.service_name, DEFAULT_SERVICE_NAME);
        assert_eq!(otlp.sample_ratio, 1.0);
        let given = TelemetryConfig::from_table(table(
            "otlp_endpoint = \"https://otel.example/v1/traces\"",
        ))
        .expect("valid");
        assert_eq!(
            given.otlp.expect("an exporter").traces_url,
            "https://otel.example/v1/traces"
        );
    }

    #[test]
    fn invalid_endpoints_are_refused_naming_the_key() {
        for endpoint in [
            "not a url",
            "127.0.0.1:4318",
            "grpc://127.0.0.1:4317",
            "http://",
            "http://collector:4318/?x=1",
        ] {
            let e = TelemetryConfig::from_table(table(&format!("otlp_endpoint = \"{endpoint}\"")))
                .expect_err(endpoint);
            assert_eq!(e.key, "otlp_endpoint", "{endpoint}");
            assert!(e.to_string().contains("telemetry.otlp_endpoint"), "{e}");
        }
    }

    #[test]
    fn headers_and_ratio_are_checked_without_echoing_values() {
        let e = TelemetryConfig::from_table(table(
            "otlp_endpoint = \"http://c:4318\"\nheaders = { \"x-api-key\" = \"secret\\nvalue\" }",
        ))
        .expect_err("a line break in a header value");
        assert_eq!(e.key, "headers.x-api-key");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = TelemetryConfig::from_table(table(
            "otlp_endpoint = \"http://c:4318\"\nsample_ratio = 1.5",
        ))
        .expect_err("not a fraction");
        assert_eq!(e.key, "sample_ratio");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<TelemetryTable>("endpoint = \"http://c:4318\"").is_err());
    }
}

//! Logs and traces: logs go to stderr (text or JSON) at `--log-level`; with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans (run, task, model call, HTTP request; each with
//! the correlation id as `corr`) are also exported over OTLP/HTTP (JSON) at info level.

use super::{Global, LogFormat};
#[cfg(feature = "otel")]
use opentelemetry::trace::TracerProvider as _;
#[cfg(feature = "otel")]
use opentelemetry_otlp::{Protocol, WithExportConfig};
#[cfg(feature = "otel")]
use opentelemetry_sdk::trace::SdkTracerProvider;
#[cfg(feature = "otel")]
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What must be flushed before the process exits.
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered.
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: could not flush traces: {e}");
            }
        }
    }
}

#[cfg(feature = "otel")]
fn otlp() -> Option<SdkTracerProvider> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    if endpoint.trim().is_empty() {
        return None;
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .build();
    match exporter {
        Ok(exporter) => Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("nofx")
                        .build(),
                )
                .build(),
        ),
        Err(e) => {
            eprintln!("warning: traces are not exported: OTLP exporter for {endpoint}: {e}");
            None
        }
    }
}

/// Installs logging (and trace export when configured).
///
/// # Errors
/// A `--log-level` that is neither a level nor a tracing filter.
pub fn init(g: &Global) -> Result<Telemetry, String> {
    let level = g.log_level.trim();
    let levels = ["off", "error", "warn", "info", "debug", "trace"];
    // A bare word is a level; a filter has `=` or `,` (`nofx=debug,sqlx=warn`).
    let is_filter = level.contains('=') || level.contains(',');
    if !is_filter && !levels.contains(&level.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "--log-level `{level}` is not a level (off, error, warn, info, debug, trace) or a filter such as `nofx=debug,warn`"
        ));
    }
    let filter = EnvFilter::try_new(level)
        .map_err(|e| format!("--log-level `{level}` is not a tracing filter: {e}"))?;
    // Colours only for a person at a terminal, never into a file or a pipe.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match g.log_format {
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => fmt.with_target(false).with_filter(filter).boxed(),
    };
    #[cfg(feature = "otel")]
    {
        let provider = otlp();
        let otel = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("nofx"))
                .with_filter(LevelFilter::INFO)
        });
        tracing_subscriber::registry().with(fmt).with(otel).init();
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otel"))]
    {
        if std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|e| !e.trim().is_empty()) {
            eprintln!(
                "warning: traces are not exported: this nofx was built without the `otel` feature"
            );
        }
        tracing_subscriber::registry().with(fmt).init();
        Ok(Telemetry {})
    }
}

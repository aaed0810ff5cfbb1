//! Where the command's own logs go: stderr, and for `serve` with telemetry also OTLP.

/// Logs to stderr, filtered by `CAPGATE_LOG`, one line per event whatever its fields hold
/// (`capgate::log_lines`). With `telemetry`, capgate's spans also go to the
/// OTLP exporter, under the exporter's own filter: `CAPGATE_LOG` never silences the export.
pub fn init_logging(telemetry: Option<&capgate::telemetry::Telemetry>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .fmt_fields(capgate::log_lines::escaped_fields())
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(telemetry.map(|telemetry| telemetry.layer()))
        .with(stderr)
        .init();
}

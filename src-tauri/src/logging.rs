//! Logs to stderr through tracing. `TOKENWARDEN_LOG` takes a tracing filter; a bare level
//! (`debug`, `trace`) applies to Tokenwarden only, so dependencies stay at `warn` and do
//! not dump request internals.

pub fn init() {
    let spec = std::env::var("TOKENWARDEN_LOG").unwrap_or_else(|_| "info".into());
    let spec = if ["error", "warn", "info", "debug", "trace"].contains(&spec.trim()) {
        format!("warn,tokenwarden={}", spec.trim())
    } else {
        spec
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

//! The `weft` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS provider for the whole process; two linked in make rustls panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Logs on stderr; stdout carries what the commands print (the demo
    // banner, created secrets).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn")),
        )
        .init();
    weft::cli::run(weft::cli::Cli::parse()).await
}

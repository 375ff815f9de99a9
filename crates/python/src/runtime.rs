//! The process-wide tokio runtime, created on first use.

use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// Worker threads default to 1: the runtime only moves bytes, and on small machines every
/// extra thread competes with Python for a core. `III_RUNTIME_THREADS` overrides it.
pub fn handle() -> &'static tokio::runtime::Handle {
    RUNTIME
        .get_or_init(|| {
            let threads = std::env::var("III_RUNTIME_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("iii-runtime")
                .enable_all()
                .build()
                .expect("the tokio runtime starts")
        })
        .handle()
}

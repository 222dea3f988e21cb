//! The process's background runtime: health checks, store probes and other
//! control-plane work, apart from Pingora's request runtimes and running from
//! before the server starts. A leaf: anything may use it, it uses nothing.

use std::sync::OnceLock;

/// A small runtime for control-plane work (health checks), separate from Pingora's
/// request runtimes and alive from before the server starts.
pub fn control_runtime() -> &'static tokio::runtime::Handle {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let rt = RT.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("fingate-control")
                .enable_all()
                .build()
                .unwrap_or_else(|e| fatal(&format!("cannot start the control runtime: {e}")))
        });
        rt.handle().clone()
    })
}

#[allow(clippy::panic)]
fn fatal(message: &str) -> ! {
    panic!("{message}")
}

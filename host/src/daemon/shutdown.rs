//! Stop signals: the first SIGTERM (what Kubernetes sends) or Ctrl-C starts a graceful stop;
//! a second one cuts the grace short.

use tokio::sync::mpsc;

/// Installs the handlers now (before the daemon reports ready, so a SIGTERM can never hit the
/// default action and kill the process mid-write) and yields one item per signal.
pub(crate) fn install() -> std::io::Result<mpsc::UnboundedReceiver<&'static str>> {
    let (tx, rx) = mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    s = term.recv() => { if s.is_none() { break } "SIGTERM" }
                    s = int.recv() => { if s.is_none() { break } "SIGINT" }
                };
                if tx.send(name).is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if tx.send("Ctrl-C").is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

//! The shutdown signals of `serve`: the first SIGINT (ctrl-c) or SIGTERM
//! starts a graceful shutdown; a second one forces it (running jobs are
//! stopped and handed back at once).

use tokio::sync::watch;

/// Counts SIGINT and SIGTERM from the moment it is made.
pub(crate) struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Start listening (for the life of the process).
    pub(crate) fn listen() -> Signals {
        let (tx, count) = watch::channel(0u32);
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            loop {
                #[cfg(unix)]
                let term_recv = async {
                    match term.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let term_recv = std::future::pending::<()>();
                let name = tokio::select! {
                    r = tokio::signal::ctrl_c() => {
                        if r.is_err() {
                            std::future::pending::<()>().await;
                        }
                        "SIGINT"
                    }
                    () = term_recv => "SIGTERM",
                };
                let n = *tx.borrow() + 1;
                if n == 1 {
                    tracing::info!(
                        "{name} received: shutting down gracefully (send it again to stop the running jobs now)"
                    );
                } else {
                    tracing::warn!(
                        "{name} received again: stopping the running jobs now and handing them back"
                    );
                }
                if tx.send(n).is_err() {
                    break;
                }
            }
        });
        Signals { count }
    }

    /// Resolves once `n` signals have arrived.
    pub(crate) fn nth(&self, n: u32) -> impl Future<Output = ()> + Send + 'static {
        let mut count = self.count.clone();
        async move {
            let _ = count.wait_for(|c| *c >= n).await;
        }
    }
}

//! Which errors are the user's input (exit 2) rather than a failure (exit 1).
//!
//! Input is refused before anything is done: a flag value (clap reports
//! those itself), a config file, a batch file line, or a value the library
//! validates (a job's field, a setting). The user fixes the input and runs
//! the command again; nothing needs cleaning up.

use std::fmt;

use capstan::{RuntimeError, StoreError};

/// An error caused by the command's input.
#[derive(Debug)]
pub(crate) struct Usage(anyhow::Error);

impl Usage {
    /// Mark `e` as caused by the input.
    pub(crate) fn wrap(e: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(Usage(e))
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole chain: `main` prints only the top error's chain.
        let parts: Vec<String> = self.0.chain().map(ToString::to_string).collect();
        f.write_str(&parts.join(": "))
    }
}

impl std::error::Error for Usage {}

/// 2 for input the user must fix, 1 for anything else.
pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    let input = e.chain().any(|c| {
        c.is::<Usage>()
            || c.is::<capstan::core::ValidationError>()
            || matches!(c.downcast_ref::<StoreError>(), Some(StoreError::Invalid(_)))
            || matches!(
                c.downcast_ref::<RuntimeError>(),
                Some(RuntimeError::Config(_) | RuntimeError::Store(StoreError::Invalid(_)))
            )
    });
    if input { 2 } else { 1 }
}

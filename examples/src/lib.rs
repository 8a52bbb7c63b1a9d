//! Runnable examples of Capstan, one per seed scenario, each with its
//! end-to-end test in `tests/`.

pub mod document_pipeline;
pub mod orders;

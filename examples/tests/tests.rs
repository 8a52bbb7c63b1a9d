//! The examples' end-to-end tests, one module per seed. Each case runs on
//! SQLite and on PostgreSQL (real databases from the conformance harnesses),
//! with the node's time pinned by the harness's manual clock.

#![allow(missing_docs)]

mod document_pipeline;

/// Expand each `module::case` into one `#[tokio::test]` per backend, so
/// `cargo test -p capstan-examples sqlite::` filters as usual and a failure
/// names its case and its backend.
macro_rules! on_both_backends {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = <capstan_store_conformance::SqliteHarness as capstan_store_conformance::Harness>::new(stringify!($case)).await;
                    crate::$module::$case(&h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = <capstan_store_conformance::PgHarness as capstan_store_conformance::Harness>::new(stringify!($case)).await;
                    crate::$module::$case(&h).await;
                }
            )*
        }
    };
}

on_both_backends!(
    document_pipeline::flaky_document_is_retried_on_429_and_500_and_completes_on_the_third_call,
    document_pipeline::unauthorized_document_fails_at_once_without_a_retry,
    document_pipeline::document_behind_a_down_api_fails_after_4_attempts_2_4_8_seconds_apart,
    document_pipeline::retry_after_of_a_429_replaces_the_backoff,
    document_pipeline::unreachable_api_is_retried_after_the_backoff,
    document_pipeline::each_attempt_runs_under_a_five_minute_timeout_and_lease,
    document_pipeline::a_call_outliving_its_timeout_is_cancelled_and_retried,
    document_pipeline::several_nodes_process_each_document_exactly_once,
);

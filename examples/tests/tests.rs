//! The examples' end-to-end tests, one module per seed. Each case runs on
//! SQLite and on PostgreSQL (real databases from the conformance harnesses),
//! with the node's time pinned by the harness's manual clock.

#![allow(missing_docs)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod document_pipeline;
mod orders;

capstan_store_conformance::on_both_backends!(
    document_pipeline::flaky_document_completes_on_the_third_call_after_429_and_500,
    document_pipeline::unauthorized_document_fails_at_once_without_a_retry,
    document_pipeline::down_api_fails_a_document_after_4_attempts_2_4_8_seconds_apart,
    document_pipeline::retry_after_of_a_429_replaces_the_backoff,
    document_pipeline::unreachable_api_is_retried_after_the_backoff,
    document_pipeline::each_attempt_runs_under_a_five_minute_timeout_and_lease,
    document_pipeline::a_call_outliving_its_timeout_is_cancelled_and_retried,
    document_pipeline::several_nodes_process_each_document_exactly_once,
    orders::an_order_and_its_receipt_commit_together_and_the_receipt_is_sent,
    orders::a_refused_order_leaves_neither_its_row_nor_its_receipt_job,
    orders::an_order_placed_twice_is_refused_by_the_database_and_keeps_one_receipt,
);

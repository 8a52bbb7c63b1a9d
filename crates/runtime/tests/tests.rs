//! The runtime's tests, each run on SQLite and on PostgreSQL: whole nodes on
//! real databases, time pinned by a manual clock where it matters.

#![allow(missing_docs)]

mod support;

mod node_cases;
mod retry_cases;
mod shutdown_cases;

capstan_store_conformance::on_both_backends!(
    node_cases::each_job_runs_exactly_once_with_8_concurrent_nodes,
    node_cases::jobs_of_kinds_without_a_handler_wait_for_one,
    node_cases::a_crashed_nodes_job_is_rescued_and_run_elsewhere,
    node_cases::a_stale_holder_cannot_finish_a_rescued_job,
    node_cases::cancel_stops_a_running_handler,
    node_cases::idle_node_wakes_on_enqueue_without_polling,
    node_cases::each_queue_runs_at_most_its_concurrency,
    retry_cases::timeout_cancels_the_handler_and_retries,
    retry_cases::heartbeat_keeps_a_long_handler_alive,
    retry_cases::each_error_class_is_recorded_and_acted_on,
    retry_cases::retry_after_is_honoured_exactly,
    retry_cases::backoff_follows_the_policy_on_the_injected_clock,
    retry_cases::panicking_handler_is_retried,
    shutdown_cases::graceful_shutdown_hands_jobs_back_without_burning_attempts,
    shutdown_cases::jobs_finishing_within_the_grace_period_complete,
    shutdown_cases::cleaner_deletes_finished_jobs_after_retention,
    shutdown_cases::a_buffered_job_that_waits_too_long_is_handed_back_not_run_late,
);

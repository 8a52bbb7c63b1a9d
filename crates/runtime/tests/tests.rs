//! The runtime's tests, each run on SQLite and on PostgreSQL: whole nodes on
//! real databases, time pinned by a manual clock where it matters.

#![allow(missing_docs)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

mod cancel_cases;
mod client_cases;
mod lease_cases;
mod node_cases;
mod outage_cases;
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
    node_cases::a_higher_priority_job_enqueued_during_a_drain_is_claimed_next,
    node_cases::a_node_id_in_use_is_refused_and_a_crashed_ones_taken_over,
    node_cases::a_handler_factory_that_panics_fails_the_attempt,
    node_cases::an_idle_node_calls_the_database_once_per_interval,
    node_cases::maintenance_runs_on_the_leader_only_and_moves_when_it_stops,
    node_cases::a_leader_on_another_queue_leaves_no_queue_unparked,
    node_cases::a_crashed_leader_is_replaced_when_its_term_ends,
    node_cases::a_backlog_of_due_jobs_is_promoted_batch_after_batch,
    node_cases::a_watched_node_says_which_jobs_changed_and_an_unwatched_one_is_silent,
    lease_cases::a_job_that_waited_in_the_buffer_starts_with_a_lease_for_its_whole_timeout,
    lease_cases::a_buffered_job_that_waits_half_its_lease_is_handed_back,
    lease_cases::a_buffered_job_never_starts_without_a_lease,
    lease_cases::a_heartbeat_that_failed_does_not_move_the_deadline,
    lease_cases::a_fenced_heartbeat_tells_the_handler_to_stop,
    lease_cases::a_handler_whose_job_was_taken_is_told_to_stop,
    lease_cases::a_claim_whose_reply_was_lost_is_handed_back,
    outage_cases::an_outage_longer_than_the_node_timeout_rescues_no_live_job,
    outage_cases::finishes_are_retried_through_a_blip,
    outage_cases::the_completer_backs_off_while_finishes_fail,
    outage_cases::a_finish_that_fails_at_shutdown_is_retried_within_the_grace,
    outage_cases::a_beat_that_never_answers_does_not_hold_the_next_back,
    outage_cases::one_bad_finish_never_takes_its_batch_down,
    cancel_cases::a_cancel_heard_too_late_still_ends_the_job,
    cancel_cases::a_job_cancelled_in_the_buffer_never_starts,
    cancel_cases::a_job_cancelled_behind_a_busy_slot_ends_while_the_slot_is_taken,
    cancel_cases::a_handler_that_finishes_its_work_after_a_cancel_keeps_it,
    cancel_cases::a_cancel_from_another_process_stops_the_running_handler,
    retry_cases::timeout_cancels_the_handler_and_retries,
    retry_cases::heartbeat_keeps_a_long_handler_alive,
    retry_cases::each_error_class_is_recorded_and_acted_on,
    retry_cases::retry_after_is_honoured_exactly,
    retry_cases::backoff_follows_the_policy_on_the_injected_clock,
    retry_cases::panicking_handler_is_retried,
    retry_cases::a_handler_sees_its_job_and_attempt,
    shutdown_cases::graceful_shutdown_hands_jobs_back_without_burning_attempts,
    shutdown_cases::graceful_shutdown_hands_buffered_jobs_back_too,
    shutdown_cases::jobs_finishing_within_the_grace_period_complete,
    shutdown_cases::cleaner_deletes_finished_jobs_after_retention,
    shutdown_cases::a_nodes_cleaner_clears_a_backlog_in_batches_then_rests,
    shutdown_cases::a_second_signal_stops_the_running_jobs_at_once,
    client_cases::waiting_on_a_job_answers_once_it_is_finished,
    client_cases::listing_jobs_filters_and_orders_newest_first,
    client_cases::concurrent_enqueues_share_round_trips_and_keep_their_own_answers,
);

/// One backend: the retries are the runtime's, the faults FaultyStore's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_node_that_cannot_register_nor_listen_yet_retries_with_backoff() {
    let h = <capstan_store_conformance::SqliteHarness as capstan_store_conformance::Harness>::new(
        "register_backoff",
    )
    .await;
    outage_cases::a_node_that_cannot_register_nor_listen_yet_retries_with_backoff(&h).await;
}

/// SQLite only: a write lock held by another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_write_lock_held_past_the_node_timeout_rescues_no_live_job() {
    let h = <capstan_store_conformance::SqliteHarness as capstan_store_conformance::Harness>::new(
        "write_lock",
    )
    .await;
    outage_cases::a_write_lock_held_past_the_node_timeout_rescues_no_live_job(&h).await;
}

/// PostgreSQL only: the pool of the application is not the node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_busy_pool_does_not_hold_the_heartbeat_back() {
    let h = <capstan_store_conformance::PgHarness as capstan_store_conformance::Harness>::new(
        "busy_pool",
    )
    .await;
    outage_cases::a_busy_pool_does_not_hold_the_heartbeat_back(&h).await;
}

//! The one conformance suite: every behaviour the runtime relies on, written
//! once as generic async functions over [`Harness`], and run against every
//! backend by [`conformance!`]. A new case added to the list in
//! [`conformance!`] runs on SQLite and PostgreSQL without touching either
//! backend crate.
//!
//! The harnesses use real databases: a temporary SQLite *file* per case (real
//! WAL, real connections) and, for PostgreSQL, a fresh database per case in
//! one throwaway cluster per test process (or in the server named by
//! `CAPSTAN_TEST_DATABASE_URL`).

// Test-only crate: a failed unwrap is a failed case, which is what it should be.
#![allow(clippy::unwrap_used)]

pub mod cases;
mod faults;
mod harness;
pub mod postgres;
mod sqlite;

pub use faults::{Faults, FaultyStore};
pub use harness::{Harness, RowLock, TempDir};
pub use postgres::{Cluster, PgHarness};
pub use sqlite::SqliteHarness;

/// Expand the whole suite for one backend: `conformance!(sqlite, path::to::Harness)`
/// makes one `#[tokio::test]` per case, named `sqlite::<area>::<case>`.
#[macro_export]
macro_rules! conformance {
    ($backend:ident, $harness:path) => {
        mod $backend {
            $crate::__conformance_cases!($harness;
                enqueue {
                    insert_many_returns_one_result_per_job_in_order,
                    enqueued_job_reads_back_with_every_option,
                    delayed_job_is_scheduled_until_due,
                    invalid_job_is_refused_and_nothing_is_written,
                    unbounded_durations_are_refused_and_nothing_is_written,
                    idempotency_key_returns_the_existing_job_in_any_state,
                    concurrent_enqueues_with_one_idempotency_key_make_one_job,
                    an_idempotency_key_answers_with_its_own_job_before_a_dedupe_twin,
                    concurrent_batches_sharing_keys_in_any_order_both_succeed,
                    dedupe_key_coalesces_into_the_waiting_job,
                    concurrent_enqueues_with_one_dedupe_key_make_one_job,
                    job_enqueued_while_its_dedupe_twin_runs_is_a_new_job,
                    duplicate_keys_within_one_batch_collapse,
                }
                tx {
                    jobs_and_the_callers_rows_commit_together,
                    a_rollback_leaves_neither_the_callers_rows_nor_the_jobs,
                    commit_wakes_subscribers_and_rollback_does_not,
                    a_savepoint_commits_into_its_transaction_or_rolls_back_alone,
                    a_refused_job_leaves_the_transaction_usable,
                    an_idempotency_key_in_a_transaction_answers_with_the_committed_job,
                }
                claim {
                    claim_takes_highest_priority_then_oldest_first,
                    a_claim_after_a_key_takes_only_what_follows_it,
                    a_small_claim_takes_the_highest_priority_and_oldest_first,
                    claim_respects_limit_and_queue,
                    claim_only_takes_requested_kinds,
                    claim_sets_holder_attempt_and_lease,
                    each_claim_writes_a_fresh_lease_token,
                    claim_skips_rows_another_transaction_holds,
                    an_unreadable_row_is_failed_alone_and_its_batch_runs,
                    a_huge_stored_timeout_still_gets_a_bounded_lease,
                    scheduled_jobs_wait_for_promotion,
                    concurrent_claimers_never_share_a_job,
                }
                finish {
                    complete_records_result_and_finish_time,
                    retry_records_the_error_and_waits_for_its_backoff,
                    fail_is_final_and_keeps_every_error,
                    snooze_gives_the_attempt_back,
                    hand_back_gives_the_attempt_back,
                    finish_under_another_lease_is_fenced,
                    a_stale_and_a_current_finish_of_one_job_are_told_apart,
                    complete_after_rescue_is_fenced,
                    heartbeat_extends_the_lease_and_records_progress,
                    heartbeat_under_a_stale_lease_is_fenced,
                    a_finish_the_database_cannot_store_does_not_fail_its_batch,
                    a_cancel_request_survives_retry_snooze_and_hand_back,
                }
                rescue {
                    jobs_of_a_dead_node_are_rescued,
                    jobs_of_a_live_node_are_kept,
                    each_node_is_judged_by_its_own_node_timeout,
                    after_an_outage_live_nodes_get_a_node_timeout_to_beat_again,
                    a_node_silent_past_the_outage_grace_is_dead,
                    after_an_outage_an_expired_lease_waits_a_node_timeout,
                    a_rescuer_never_takes_its_own_nodes_jobs,
                    expired_lease_of_a_live_node_is_rescued_a_node_timeout_later,
                    rescue_fails_jobs_without_attempts_left,
                    restarted_node_reclaims_its_previous_jobs,
                    an_overwritten_error_history_stops_no_other_job,
                    restarted_node_fails_jobs_without_attempts_left,
                    a_cancel_request_survives_rescue_and_restart,
                }
                admin {
                    cancel_of_a_waiting_job_is_final,
                    cancel_of_a_running_job_is_requested_from_its_holder,
                    cancel_of_a_finished_or_unknown_job_is_refused,
                    retry_runs_a_failed_job_again,
                    retry_of_a_running_job_is_refused,
                    list_filters_by_queue_state_and_kind,
                    list_pages_by_a_cursor_stable_under_inserts_and_filters_by_tag_and_ids,
                }
                queues {
                    queue_counts_by_state,
                    delete_queue_removes_only_that_queue,
                }
                nodes {
                    nodes_register_heartbeat_and_deregister,
                    a_node_id_in_use_by_a_live_process_is_refused,
                }
                leader {
                    one_leader_per_term_and_the_next_once_it_ends,
                    a_resigned_term_is_won_at_the_next_bid,
                    concurrent_bidders_elect_exactly_one,
                }
                modules {
                    a_refresh_lock_is_taken_once_and_released_with_its_outcome,
                    a_lock_whose_lease_ended_is_taken_over_and_the_late_write_is_fenced,
                    puts_and_invalidations_fence_a_refresh_in_flight,
                    concurrent_takers_of_a_cold_key_lock_it_exactly_once,
                    entries_list_in_module_and_key_order_by_pages,
                    a_refresh_ahead_takes_the_lock_only_near_expiry,
                }
                maintenance {
                    migrate_twice_is_a_no_op,
                    migrate_refuses_to_upgrade_under_live_older_nodes,
                    check_schema_refuses_an_older_schema_and_writes_nothing,
                    promote_reports_the_next_due_time,
                    cleaner_deletes_only_jobs_past_retention_in_batches,
                    unhandled_jobs_wait_outside_the_claim_order_until_a_node_handles_them,
                    a_node_of_any_kind_handles_every_kind_of_its_queues,
                }
                notify {
                    enqueue_wakes_subscribers,
                    enqueue_from_another_connection_wakes_subscribers,
                    a_scheduled_job_wakes_no_producer_until_promoted,
                    a_rescue_wakes_the_queues_it_made_runnable,
                    a_restarted_node_wakes_the_queues_of_the_jobs_it_reclaimed,
                    a_hand_back_and_an_immediate_retry_wake_their_queue,
                    a_retry_by_hand_wakes_its_queue,
                    a_node_that_handles_set_aside_jobs_wakes_their_queue,
                    a_completion_wakes_no_one,
                    a_cancel_request_reaches_the_control_topic,
                    a_topic_no_backend_knows_is_carried_to_its_subscribers_only,
                    a_payload_over_the_limit_is_refused_on_both_backends,
                }
            );
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($harness:path; $($area:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $area {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let h = <$harness as $crate::Harness>::new(
                            concat!(stringify!($area), "_", stringify!($case)),
                        )
                        .await;
                        $crate::cases::$area::$case(&h).await;
                    }
                )*
            }
        )*
    };
}

/// Run test cases of another crate on both backends:
/// `on_both_backends!(cases::a_case, other::b_case)` makes `sqlite::a_case`,
/// `postgres::a_case`, … each a `#[tokio::test]` that builds a fresh harness
/// and calls `crate::cases::a_case(&harness)`.
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // `crate::` is meant to be the calling crate
macro_rules! on_both_backends {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = <$crate::SqliteHarness as $crate::Harness>::new(stringify!($case)).await;
                    crate::$module::$case(&h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = <$crate::PgHarness as $crate::Harness>::new(stringify!($case)).await;
                    crate::$module::$case(&h).await;
                }
            )*
        }
    };
}

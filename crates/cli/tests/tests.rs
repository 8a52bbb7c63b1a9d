//! The CLI contract, end to end through the built `capstan` binary, on
//! SQLite and on PostgreSQL; and the crash test: `serve` killed with
//! SIGKILL mid-run, restarted, and every job completes.
#![allow(missing_docs)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod chaos;
mod clients;
mod contract;
mod crash;
mod push;
mod support;

capstan_store_conformance::on_both_backends!(
    contract::migrate_is_idempotent,
    contract::enqueue_prints_the_job_and_honours_keys,
    contract::batch_enqueue_is_all_or_nothing,
    contract::jobs_list_show_cancel_retry,
    contract::queues_prints_counts_per_state,
    contract::serve_runs_jobs_and_stops_on_sigterm,
    contract::serve_answers_http_and_refuses_an_open_port_without_tokens,
    contract::a_second_sigterm_stops_serve_at_once,
    contract::wait_exit_codes_tell_the_outcome,
    contract::errors_are_one_line_with_the_right_exit_code,
    contract::bench_prints_its_report,
    contract::commands_other_than_migrate_and_serve_never_write_schema,
    contract::config_prints_every_setting_and_where_it_came_from,
    crash::serve_killed_mid_run_loses_no_job,
    clients::typescript_and_python_workers_share_a_queue_and_survive_a_kill,
    clients::each_client_checks_out_fails_a_refused_result_alone_and_stops_when_busy,
    push::a_push_queue_posts_signed_jobs_and_follows_the_status_table,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_postgres() {
    chaos::nodes_survive_kills_crashes_cuts_and_an_outage_on_postgres().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sqlite() {
    chaos::processes_killed_mid_batch_leave_sqlite_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_a_database_that_does_not_answer() {
    contract::serve_waits_for_a_database_that_does_not_answer().await;
}

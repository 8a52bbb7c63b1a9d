//! The HTTP API's tests, each on SQLite and on PostgreSQL, through a real
//! socket: a server on a free port of 127.0.0.1 and an HTTP client.

#![allow(missing_docs)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

mod auth_cases;
mod events_cases;
mod jobs_cases;
mod worker_cases;

capstan_store_conformance::on_both_backends!(
    jobs_cases::jobs_are_enqueued_read_paged_cancelled_and_retried,
    jobs_cases::a_refused_request_is_a_problem_with_its_status_and_changes_nothing,
    jobs_cases::a_wait_answers_when_the_job_finishes_or_408_with_the_job,
    jobs_cases::the_openapi_document_lists_every_route,
    worker_cases::a_worker_claims_beats_completes_and_fails_by_lease,
    worker_cases::a_worker_that_stops_calling_loses_its_jobs_to_the_next,
    worker_cases::a_waiting_claim_wakes_on_enqueue_and_ends_on_shutdown,
    worker_cases::a_worker_name_of_a_live_node_is_refused,
    worker_cases::a_fail_with_an_http_status_follows_the_push_table,
    auth_cases::each_role_may_do_its_part_and_nothing_else,
    events_cases::a_job_stream_shows_each_change_and_resumes_without_missing_the_end,
    events_cases::a_queue_stream_shows_its_jobs_and_asks_for_a_resync_on_reconnect,
    events_cases::a_wait_wakes_on_a_change_made_elsewhere_and_streams_end_on_shutdown,
);

//! The freshness cache, each case on SQLite and on PostgreSQL, with nodes
//! that are `Modules` on stores of their own over one database.

#![allow(missing_docs)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod cases;
mod support;

capstan_store_conformance::on_both_backends!(
    cases::a_cold_key_read_by_1000_callers_over_3_nodes_is_fetched_once,
    cases::fresh_stale_and_refresh_ahead_follow_the_clock,
    cases::a_failed_refresh_serves_stale_with_its_error_and_backs_off,
    cases::a_refresher_that_panics_or_hangs_still_releases_the_lock,
    cases::a_refresh_slower_than_its_lease_is_taken_over_and_its_late_write_fenced,
    cases::writes_and_invalidations_reach_every_nodes_memory,
    cases::case_insensitive_keys_are_one_entry_and_bad_names_are_refused,
    cases::not_found_is_remembered_for_the_negative_ttl,
    cases::a_refresher_that_panics_before_its_future_is_caught_too,
    cases::a_not_found_is_not_refreshed_ahead,
    cases::a_read_after_a_put_or_an_invalidation_sees_it,
);

//! The conformance suite, run on both backends.

capstan_store_conformance::conformance!(sqlite, capstan_store_conformance::SqliteHarness);
capstan_store_conformance::conformance!(postgres, capstan_store_conformance::PgHarness);

//! Runnable examples of Capstan, one per seed scenario.

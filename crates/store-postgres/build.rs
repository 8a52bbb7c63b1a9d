//! `sqlx::migrate!` embeds the migrations at compile time, and cargo does
//! not know it reads them: rebuild this crate when one is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

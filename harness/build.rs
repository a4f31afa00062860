// `sqlx::migrate!` embeds harness/migrations at compile time; without this, an incremental
// build would not see a new migration.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

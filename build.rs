// The migrations (sqlx::migrate!) and the dashboard's build (ui/dist, rust-embed) are compiled
// into the binary: a new or changed file there must rebuild it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=ui/dist");
}

//! The `nofx` command: parses arguments and calls the library.

use std::process::ExitCode;

/// jemalloc keeps fragmentation and the resident size of long runs with many tasks lower than
/// the system allocator does (measured with `nofx bench`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    nofx::cli::main()
}

//! The `nofx` command: parses arguments and calls the library.

mod cli;

use std::process::ExitCode;

/// jemalloc keeps fragmentation and the resident size of long runs with many tasks lower than
/// the system allocator does (measured with `nofx bench`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(nofx::tools::GUARD_ARG) {
        return ExitCode::from(nofx::tools::run_guard(&args[2..]).clamp(0, 255) as u8);
    }
    cli::main()
}

//! The `nofx` command: parses arguments and calls the library.

mod cli;

use std::process::ExitCode;

/// mimalloc returns freed memory to the system more readily than the default allocator,
/// which keeps the resident size of long runs with many tasks low.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(nofx::tools::GUARD_ARG) {
        return ExitCode::from(nofx::tools::run_guard(&args[2..]).clamp(0, 255) as u8);
    }
    cli::main()
}

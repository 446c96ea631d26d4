//! The `flowmesh` command.

/// mimalloc rather than the C library's allocator: the server and worker
/// allocate and free many small buffers per request and per task, across
/// threads, and glibc's arenas spent a seventh of the queue benchmark's
/// time in `malloc`, `free` and their consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flowmesh_cli::main()
}

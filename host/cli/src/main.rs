//! The `flowmesh` command.

fn main() -> std::process::ExitCode {
    flowmesh_cli::main()
}

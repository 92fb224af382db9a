//! `vinetc`, the client's command line: see `src/cli/` for the subcommands.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

//! cage's entry point: parse arguments, run the command, map errors to
//! exit codes. Errors are printed once, here, with their whole chain.

use std::process::ExitCode;

use clap::Parser;

use cage::cli::Cli;
use cage::error::EXIT_CAGE;

fn main() -> ExitCode {
    // The inside half of `cage selftest`, which runs this binary as the
    // caged command. Not a clap subcommand: it is no command for people,
    // so it stays out of --help, the man page and the completions.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == cage::selftest::PROBE_ARG) {
        let spec = args.next().unwrap_or_default();
        return ExitCode::from(cage::selftest::probe::run(&spec.to_string_lossy()) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A forgotten `--` (`cage claude --version`): say what was meant.
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::InvalidSubcommand | ErrorKind::UnknownArgument
            ) {
                let args: Vec<String> = std::env::args().skip(1).collect();
                if let Some(meant) = cage::cli::forgotten_separator(&args) {
                    eprintln!(
                        "cage: the command to run goes after `--`: did you mean `{meant}`?\n\
                         (see `cage --help`)"
                    );
                    return ExitCode::from(EXIT_CAGE as u8);
                }
            }
            // --help and --version are not errors; everything else is a
            // usage error, which is cage's own failure (125), as for env(1).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_CAGE as u8 } else { 0 });
        }
    };
    match cage::commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            // The chain may quote what the agent chose (a path in the
            // workspace): escaped, and written without panicking.
            let chain = cage::error::chain(&e);
            cage::term::emit(&format!("cage: {}", cage::term::escape_text(&chain)));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

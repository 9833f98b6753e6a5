//! The `push-connector` command: parses the command line and runs one verb.
//!
//! Exit codes: 0 everything done, 1 some rows were refused, 2 an error (file unreadable,
//! configuration wrong, a server unreachable).

mod cli;

/// Validation allocates many small strings on several threads; mimalloc does that far faster
/// than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    quiet_on_closed_output();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Output piped into a reader that stops early (`push-connector runs | head`): the verb ends
/// quietly with 141, as a program killed by SIGPIPE does, instead of printing a panic. Every
/// other panic is reported as before.
fn quiet_on_closed_output() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}

//! `crossline-audio`: diagnostics for field engineers (see docs/AUDIO.md).
//!
//! ```text
//! crossline-audio dtmf line.wav
//! crossline-audio cid  line.wav --standard etsi|bell202|dtmf
//! ```

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "crossline-audio",
    version,
    about = "Crossline telephone audio diagnostics: DTMF and caller ID from line recordings"
)]
struct Cli {
    #[command(subcommand)]
    command: crossline_audio::cli::Cmd,
}

/// JSON on stdout; on failure one line on stderr (`error: ` and the causes
/// not already in it) and exit status 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match crossline_audio::cli::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !msg.contains(&cause) {
                    msg.push_str(": ");
                    msg.push_str(&cause);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

use clap::Parser;

fn main() {
    let cli = pipeline::cli::Cli::parse();
    let code = match pipeline::cli::run(cli) {
        Ok(code) => code,
        Err(pipeline::error::Error::RunEnded { code }) => code,
        Err(e) => {
            // Never a panic, even with stderr closed too.
            use std::io::Write;
            let text = e.to_string();
            let nl = if text.ends_with('\n') { "" } else { "\n" };
            let _ = write!(std::io::stderr(), "{text}{nl}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

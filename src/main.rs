use clap::Parser;

fn main() {
    let cli = pipeline::cli::Cli::parse();
    let code = match pipeline::cli::run(cli) {
        Ok(code) => code,
        Err(pipeline::error::Error::RunEnded { code }) => code,
        Err(e) => {
            eprint!("{e}");
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

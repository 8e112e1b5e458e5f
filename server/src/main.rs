use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match celeriac::config::Config::load() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // Two workers cover ingest and the state owner; HTTP is light.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("celeriac")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(celeriac::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

use std::process::ExitCode;

fn main() -> ExitCode {
    // `celeriac check-alerts FILE...` validates rule files without starting
    // anything.
    // (args_os: a non-UTF-8 argument must reach clap's error, not panic.)
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "check-alerts")
    {
        let files: Vec<String> = std::env::args_os()
            .skip(2)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return celeriac::alerting::check_command(&files);
    }
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

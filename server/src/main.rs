fn main() {
    let _config = match celeriac::config::Config::load() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
}

//! Settings of the result backend celeriac reads for Flower's task API.

#[derive(Debug, Clone, clap::Args)]
pub struct ResultsArgs {
    /// Celery's `result_backend` URL, for `/api/task/result`, `apply` and
    /// `abort`: `redis://[:password@]host[:port][/db]`, `rediss://...` or
    /// `db+postgresql://user:password@host/db`. Without it those endpoints
    /// answer 503, as Flower does.
    #[arg(long, env = "CELERIAC_RESULT_BACKEND", value_name = "URL")]
    pub result_backend: Option<String>,
}

//! Prometheus registry: self metrics and the Celery metrics folded from state.

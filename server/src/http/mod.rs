//! HTTP: Flower-compatible API, health, /metrics.

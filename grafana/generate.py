#!/usr/bin/env python3
"""Regenerates dashboards/*.json (run from grafana/). The JSON files are what Grafana loads; edit here and re-run."""
import json
SEL = 'job=~"$job"'
def sel(*extra):
    return "{" + ",".join([SEL, *extra]) + "}"
Q = 'queue_name=~"$queue"'
T = 'name=~"$task"'
W = 'hostname=~"$worker"'
P1M = 'period="1m"'
NONEMPTY = 'exception!=""'
def var(name, label, metric, multi=True):
    return {"name": name, "label": label, "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": f"label_values({metric}, {label if name!='job' else 'job'})", "refId": "v"},
            "definition": f"label_values({metric}, {label if name!='job' else 'job'})",
            "includeAll": True, "multi": multi, "allValue": ".*", "current": {"text": "All", "value": "$__all"},
            "refresh": 2, "sort": 1}
def templating(*vs):
    ds = {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}}
    return {"list": [ds, *vs]}
VARS = {
 "job": lambda: var("job", "job", "celery_worker_up"),
 "queue": lambda: var("queue", "queue_name", "celery_task_sent_total"),
 "task": lambda: var("task", "name", "celery_task_received_total"),
 "worker": lambda: var("worker", "hostname", "celery_worker_up"),
}
def panel(pid, title, targets, kind="timeseries", unit="short", x=0, y=0, w=12, h=8, desc=""):
    return {"id": pid, "title": title, "type": kind, "description": desc,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {}, "targets": [{"refId": chr(65+i), "expr": e, "legendFormat": l, "datasource": {"type": "prometheus", "uid": "${datasource}"}} for i, (e, l) in enumerate(targets)]}
def layout(panels):
    out = []; x = y = 0
    for i, p in enumerate(panels):
        title, targets, kw = p[0], p[1], (p[2] if len(p) > 2 else {})
        w = kw.pop("w", 12); h = 4 if kw.get("kind") == "stat" else 8
        if x + w > 24: x = 0; y += h
        out.append(panel(i + 1, title, targets, x=x, y=y, w=w, h=h, **kw))
        x += w
    return out
def dash(uid, title, vars, panels, desc):
    return {"uid": uid, "title": title, "description": desc, "tags": ["celery", "celeriac"], "timezone": "",
            "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"}, "templating": templating(*[VARS[v]() for v in vars]),
            "annotations": {"list": []}, "panels": layout(panels)}
def rate(m, *s):
    return f"rate({m}{sel(*s)}[$__rate_interval])"
def q(p, m, by, *s):
    return f"histogram_quantile({p}, sum by (le, {by}) ({rate(m + '_bucket', *s)}))"

overview = dash("celeriac-overview", "Celery / Overview", ["job", "queue"], [
 ("Workers online", [(f"sum(celery_worker_up{sel()})", "online")], dict(kind="stat", w=6)),
 ("Tasks running", [(f"sum(celery_worker_tasks_active{sel()})", "active")], dict(kind="stat", w=6)),
 ("Queued messages", [(f"sum(celery_queue_length{sel(Q)})", "ready")], dict(kind="stat", w=6)),
 ("Queue statistics source up", [(f"max by (source) (celeriac_broker_stats_up{sel()})", "{{source}}")], dict(kind="stat", w=6)),
 ("Throughput by state", [
    (f"sum(rate(celery_task_received_total{sel(Q)}[$__rate_interval]))", "received"),
    (f"sum(rate(celery_task_started_total{sel(Q)}[$__rate_interval]))", "started"),
    (f"sum(rate(celery_task_succeeded_total{sel(Q)}[$__rate_interval]))", "succeeded"),
    (f"sum(rate(celery_task_failed_total{sel(Q)}[$__rate_interval]))", "failed"),
   ], dict(unit="ops")),
 ("Failure ratio", [(f"sum(rate(celery_task_failed_total{sel(Q)}[$__rate_interval])) / clamp_min(sum(rate(celery_task_failed_total{sel(Q)}[$__rate_interval])) + sum(rate(celery_task_succeeded_total{sel(Q)}[$__rate_interval])), 1e-9)", "failed / finished")], dict(unit="percentunit")),
 ("Queue depth", [(f"sum by (queue_name) (celery_queue_length{sel(Q)})", "{{queue_name}}")]),
 ("Queue wait p95 (sent to started)", [(q(0.95, "celery_task_queue_wait_time", "queue_name", Q), "{{queue_name}}")], dict(unit="s")),
 ("Task runtime p50 / p95 / p99", [
    (f"histogram_quantile(0.50, sum by (le) ({rate('celery_task_runtime_bucket', Q)}))", "p50"),
    (f"histogram_quantile(0.95, sum by (le) ({rate('celery_task_runtime_bucket', Q)}))", "p95"),
    (f"histogram_quantile(0.99, sum by (le) ({rate('celery_task_runtime_bucket', Q)}))", "p99"),
   ], dict(unit="s")),
 ("Worker load average (1m)", [(f"celeriac_worker_loadavg{sel(P1M)}", "{{hostname}}")]),
 ("Events ingested by celeriac", [(f"sum(rate(celeriac_events_ingested_total{sel()}[$__rate_interval]))", "events/s")], dict(unit="ops")),
 ("Ingest lag p99", [(f"histogram_quantile(0.99, sum by (le) (rate(celeriac_ingest_lag_seconds_bucket{sel()}[$__rate_interval])))", "lag")], dict(unit="s")),
], "Workers, throughput, failures, queue depth and wait, runtime quantiles, celeriac's own health.")

per_task = dash("celeriac-task", "Celery / Task", ["job", "task", "worker"], [
 ("Received / started / succeeded", [
    (f"sum by (name) (rate(celery_task_received_total{sel(T, W)}[$__rate_interval]))", "received {{name}}"),
    (f"sum by (name) (rate(celery_task_started_total{sel(T, W)}[$__rate_interval]))", "started {{name}}"),
    (f"sum by (name) (rate(celery_task_succeeded_total{sel(T, W)}[$__rate_interval]))", "succeeded {{name}}"),
   ], dict(unit="ops")),
 ("Failures by exception", [(f"sum by (name, exception) (rate(celery_task_failed_total{sel(T, W, NONEMPTY)}[$__rate_interval]))", "{{name}} {{exception}}")], dict(unit="ops")),
 ("Runtime p50 / p95 / p99", [
    (q(0.50, "celery_task_runtime", "name", T, W), "p50 {{name}}"),
    (q(0.95, "celery_task_runtime", "name", T, W), "p95 {{name}}"),
    (q(0.99, "celery_task_runtime", "name", T, W), "p99 {{name}}"),
   ], dict(unit="s")),
 ("Queue wait p95 (sent to started)", [(q(0.95, "celery_task_queue_wait_time", "name", T, W), "{{name}}")], dict(unit="s")),
 ("Prefetch time p95 (received to started)", [(q(0.95, "celeriac_task_prefetch_time_seconds", "name", T, W), "{{name}}")], dict(unit="s")),
 ("Succeeded in range by worker", [(f"sum by (hostname) (increase(celery_task_succeeded_total{sel(T, W)}[$__range]))", "{{hostname}}")], dict(kind="bargauge")),
], "One or more task names: rates by state, failures by exception, runtime, queue wait and prefetch time.")

per_queue = dash("celeriac-queue", "Celery / Queue", ["job", "queue"], [
 ("Ready messages", [(f"sum by (queue_name) (celery_queue_length{sel(Q)})", "{{queue_name}}")]),
 ("Consumers", [(f"sum by (queue_name) (celery_active_consumer_count{sel(Q)})", "{{queue_name}}")]),
 ("Unacknowledged (prefetched) messages", [(f"sum by (queue_name) (celeriac_queue_messages_unacknowledged{sel(Q)})", "{{queue_name}}")]),
 ("Publish and deliver rates", [
    (f"sum by (queue_name) (celeriac_queue_publish_rate{sel(Q)})", "publish {{queue_name}}"),
    (f"sum by (queue_name) (celeriac_queue_deliver_rate{sel(Q)})", "deliver {{queue_name}}"),
   ], dict(unit="ops")),
 ("Tasks sent by queue", [(f"sum by (queue_name) (rate(celery_task_sent_total{sel(Q)}[$__rate_interval]))", "{{queue_name}}")], dict(unit="ops")),
 ("Queue wait p50 / p95", [
    (q(0.50, "celery_task_queue_wait_time", "queue_name", Q), "p50 {{queue_name}}"),
    (q(0.95, "celery_task_queue_wait_time", "queue_name", Q), "p95 {{queue_name}}"),
   ], dict(unit="s")),
 ("Queue statistics poll duration", [(f"max(celeriac_broker_stats_duration_seconds{sel()})", "poll")], dict(unit="s")),
], "Per queue: depth, consumers, prefetched messages, publish/deliver rates, wait time.")

for name, d in [("overview", overview), ("task", per_task), ("queue", per_queue)]:
    with open(f"dashboards/celery-{name}.json", "w") as f:
        json.dump(d, f, indent=2); f.write("\n")

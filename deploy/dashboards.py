"""The Grafana dashboards (written to ``k8s/base/dashboards/*.json`` by ``deploy.generate``).

Every query uses metrics the code exports (``crm_platform.observability``,
``crm_platform.batching``, the reports service's business gauges) or RabbitMQ's prometheus plugin
(``/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count``, scraped by the
RabbitMQ PodMonitor). ``tests/deploy`` checks each metric against a live scrape and runs each
query, template variables substituted, against a real Prometheus.

Template variables: ``$datasource`` (Prometheus), ``$service`` (regex, "All" = ``.+``) and
``$department`` (regex over the business gauges' ``department`` label).
"""

from __future__ import annotations

RATE = "5m"
SERVICE_QUEUES = 'queue=~"rpc-($service)|evt-.+--($service)\\\\..+"'


def _target(expr: str, legend: str, ref: str) -> dict:
    return {"datasource": {"type": "prometheus", "uid": "${datasource}"}, "expr": expr,
            "legendFormat": legend, "refId": ref, "range": True}


def _panel(panel_id: int, title: str, targets: list[tuple[str, str]], *, unit: str = "short",
           x: int = 0, y: int = 0, w: int = 12, h: int = 8, kind: str = "timeseries",
           description: str = "") -> dict:
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": [_target(expr, legend, chr(ord("A") + i))
                    for i, (expr, legend) in enumerate(targets)],
    }


def _variable(name: str, query: str, *, label: str, all_value: str = ".+") -> dict:
    return {
        "name": name, "label": label, "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2, "includeAll": True, "multi": True, "allValue": all_value,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _datasource() -> dict:
    return {"name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0}


def _board(uid: str, title: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["roofcrm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [_datasource(), *variables]},
        "panels": panels,
    }


def red() -> dict:
    sel = 'service=~"$service"'
    duration = f"rate(crm_entrypoint_duration_seconds_bucket{{{sel}}}[{RATE}])"
    panels = [
        _panel(1, "Requests per second (rate), by service and kind", [
            (f"sum by (service, kind) (rate(crm_entrypoint_calls_total{{{sel}}}[{RATE}]))",
             "{{service}} {{kind}}")], unit="reqps", x=0, y=0),
        _panel(2, "Errors per second, by service and exception", [
            (f"sum by (service, error) (rate(crm_entrypoint_errors_total{{{sel}}}[{RATE}]))",
             "{{service}} {{error}}")], unit="reqps", x=12, y=0),
        _panel(3, "Error ratio", [
            (f'sum by (service) (rate(crm_entrypoint_calls_total{{{sel},outcome="error"}}[{RATE}]))'
             f" / sum by (service) (rate(crm_entrypoint_calls_total{{{sel}}}[{RATE}]))",
             "{{service}}")], unit="percentunit", x=0, y=8),
        _panel(4, "Duration p50 / p99 (all entrypoints)", [
            (f"histogram_quantile(0.5, sum by (service, le) ({duration}))", "{{service}} p50"),
            (f"histogram_quantile(0.99, sum by (service, le) ({duration}))", "{{service}} p99"),
        ], unit="s", x=12, y=8),
        _panel(5, "Slowest entrypoints (p99)", [
            (f"topk(10, histogram_quantile(0.99, sum by (service, kind, entrypoint, le) "
             f"(rate(crm_entrypoint_duration_seconds_bucket{{{sel}}}[{RATE}]))))",
             "{{service}}.{{entrypoint}} ({{kind}})")], unit="s", x=0, y=16),
        _panel(6, "Events handled, by outcome", [
            (f"sum by (service, outcome) (rate(crm_events_consumed_total{{{sel}}}[{RATE}]))",
             "{{service}} {{outcome}}")], unit="ops", x=12, y=16),
        _panel(7, "Batch handlers: events per batch (p50)", [
            (f"histogram_quantile(0.5, sum by (service, handler, le) "
             f"(rate(crm_event_batch_size_bucket{{{sel}}}[{RATE}])))", "{{handler}}")],
            x=0, y=24),
    ]
    service = _variable("service", "label_values(crm_entrypoint_calls_total, service)",
                        label="Service")
    return _board("roofcrm-red", "RoofCRM · services (rate, errors, duration)", panels,
                  [service])


def backbone() -> dict:
    sel = 'service=~"$service"'
    panels = [
        _panel(1, "Queue depth (ready messages)", [
            (f"sum by (queue) (rabbitmq_detailed_queue_messages_ready{{{SERVICE_QUEUES}}})",
             "{{queue}}")], x=0, y=0,
            description="Messages waiting in each service's RPC and event queues: what KEDA "
                        "scales on."),
        _panel(2, "Consumer lag (delivered, not yet acknowledged)", [
            (f"sum by (queue) (rabbitmq_detailed_queue_messages_unacked{{{SERVICE_QUEUES}}})",
             "{{queue}}")], x=12, y=0),
        _panel(3, "Consumers per queue", [
            (f"sum by (queue) (rabbitmq_detailed_queue_consumers{{{SERVICE_QUEUES}}})",
             "{{queue}}")], x=0, y=8,
            description="0 on a queue with messages: nobody is working it."),
        _panel(4, "Retry queues (messages waiting for another try)", [
            ('sum by (queue) (rabbitmq_detailed_queue_messages{queue=~"crm\\\\.retry\\\\..+"})',
             "{{queue}}")], x=12, y=8),
        _panel(5, "Outbox lag (age of the oldest unsent event)", [
            (f"max by (service) (crm_outbox_lag_seconds{{{sel}}})", "{{service}}")],
            unit="s", x=0, y=16),
        _panel(6, "Outbox: pending events and relay rate", [
            (f"sum by (service) (crm_outbox_pending{{{sel}}})", "{{service}} pending"),
            (f"sum by (service) (rate(crm_outbox_published_total{{{sel}}}[{RATE}]))",
             "{{service}} published/s"),
        ], x=12, y=16),
        _panel(7, "Dead letters (queue)", [
            ('sum by (queue) '
             '(rabbitmq_detailed_queue_messages{queue=~"($service)\\\\.dead_letters"})',
             "{{queue}}")], x=0, y=24,
            description="Events parked after their retries; ./crm dead-letters SERVICE or "
                        "/api/v1/admin/dead-letters/<service> to look and redrive."),
        _panel(8, "Dead-lettered per hour, by handler and reason", [
            (f"sum by (service, handler, reason) (increase(crm_dead_letters_total{{{sel}}}[1h]))",
             "{{handler}} {{reason}}")], x=12, y=24),
        _panel(9, "Outbox relay errors and unroutable events (per hour)", [
            (f"sum by (service) (increase(crm_outbox_relay_errors_total{{{sel}}}[1h]))",
             "{{service}} relay errors"),
            (f"sum by (service, type) (increase(crm_events_unroutable_total{{{sel}}}[1h]))",
             "{{service}} unroutable {{type}}"),
        ], x=0, y=32),
    ]
    service = _variable("service", "label_values(crm_outbox_pending, service)",
                        label="Service")
    return _board("roofcrm-backbone", "RoofCRM · queues, outbox, dead letters", panels,
                  [service])


def business() -> dict:
    sel = 'department=~"$department"'
    gauges = [
        ("crm_calls_today", "Calls today"),
        ("crm_new_leads_today", "New leads today"),
        ("crm_stuck_deals", "Stuck deals"),
        ("crm_overdue_tasks", "Overdue tasks"),
    ]
    panels = []
    for i, (metric, title) in enumerate(gauges):
        panels.append(_panel(i + 1, title, [
            (f"sum by (department) ({metric}{{{sel}}})", "{{department}}")],
            kind="bargauge", x=(i % 2) * 12, y=(i // 2) * 8))
    for i, (metric, title) in enumerate(gauges):
        panels.append(_panel(len(gauges) + i + 1, f"{title} over time", [
            (f"sum by (department) ({metric}{{{sel}}})", "{{department}}")],
            x=(i % 2) * 12, y=16 + (i // 2) * 8))
    department = _variable("department", "label_values(crm_calls_today, department)",
                           label="Department")
    return _board("roofcrm-business", "RoofCRM · sales floor (business gauges)", panels,
                  [department])


def dashboards() -> dict[str, dict]:
    return {"red": red(), "backbone": backbone(), "business": business()}

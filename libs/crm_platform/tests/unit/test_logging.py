import json
import logging

from crm_platform.observability import ContextFilter, _current, entrypoint_kind, json_formatter


def test_log_lines_are_json_with_the_call_id_chain():
    record = logging.LogRecord("clients", logging.INFO, __file__, 1, "клиент создан", (), None)
    _current.call_id_stack = ["gateway.create_client.1", "clients.create_client.2"]
    _current.service = "clients"
    try:
        assert ContextFilter().filter(record)
    finally:
        _current.call_id_stack = None
        _current.service = None
    line = json.loads(json_formatter().format(record))
    assert line["message"] == "клиент создан"
    assert line["level"] == "INFO"
    assert line["service"] == "clients"
    assert line["call_id"] == "clients.create_client.2"
    assert line["call_id_stack"] == ["gateway.create_client.1", "clients.create_client.2"]


def test_outside_a_worker_the_chain_is_empty():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    ContextFilter("deals").filter(record)
    assert (record.service, record.call_id, record.call_id_stack) == ("deals", None, [])


def test_entrypoints_are_labelled_by_kind():
    from nameko.rpc import Rpc
    from nameko.timer import Timer

    from crm_platform.consumer import ReliableEventHandler
    from crm_platform.web import HttpEndpoint

    assert entrypoint_kind(Rpc()) == "rpc"
    assert entrypoint_kind(HttpEndpoint("GET", "/")) == "http"
    assert entrypoint_kind(ReliableEventHandler("a", "b")) == "event"
    assert entrypoint_kind(Timer(1)) == "timer"

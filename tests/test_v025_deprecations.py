"""The deprecations of iii-sdk 0.25.0: categories, exact texts, the caller's line, and the
once-per-process log on the ``iii.iii`` logger."""

from __future__ import annotations

import logging
import warnings

import pytest

import iii.iii
from iii import TriggerConfig, TriggerHandler, TriggerTypeRef
from iii.stream import IStream

from conftest import unique, wait_registered

GUIDE = "Migration guide: https://iii.dev/docs/upgrading/from-0-24-x"
REGISTER_TRIGGER = (
    "register_trigger is deprecated and will be removed in a future release. "
    f"Use iii.observe(source, target) instead. {GUIDE}"
)
REGISTER_TRIGGER_TYPE = (
    "register_trigger_type is deprecated and will be removed in a future release. Register a "
    "function with an observe descriptor (register_function(id, handler, observe=ObserveHooks(...))) "
    f"instead. {GUIDE}"
)
UNREGISTER_TRIGGER_TYPE = (
    "unregister_trigger_type is deprecated and will be removed in a future release. Trigger types "
    f"are replaced by functions with an observe descriptor. {GUIDE}"
)
REF_REGISTER_FUNCTION = (
    "TriggerTypeRef.register_function is deprecated and will be removed in a future release. "
    f"Use iii.register_function and iii.observe(source, target) instead. {GUIDE}"
)
ISTREAM = (
    "IStream is deprecated (iii-stream) and will be removed in an upcoming release. Behavior is "
    "unchanged for now. Migration guide: https://iii.dev/docs/upgrading/migrate-from-streams"
)


class Handler(TriggerHandler):
    def register_trigger(self, config: TriggerConfig) -> None:
        pass

    def unregister_trigger(self, config: TriggerConfig) -> None:
        pass


def _deprecations(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if w.category is DeprecationWarning]


@pytest.fixture
def fresh_process_record(monkeypatch):
    """As the official tests do: a fresh once-per-process record."""
    monkeypatch.setattr(iii.iii, "_deprecations_warned", set())


def test_register_trigger_type_and_register_trigger(make_worker, caplog, fresh_process_record):
    worker = make_worker()
    fid = unique("target")
    worker.register_function(fid, lambda data: data)
    type_id = unique("type")
    with caplog.at_level(logging.WARNING, logger="iii.iii"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ref = worker.register_trigger_type({"id": type_id, "description": "d"}, Handler())
        worker.register_trigger_type({"id": unique("type2"), "description": "d"}, Handler())
        first = worker.register_trigger({"type": type_id, "function_id": fid, "config": {}})
        second = ref.register_trigger(fid, {"a": 1})
        worker.register_trigger({"type": type_id, "function_id": fid, "config": {}})
    assert _deprecations(record) == [REGISTER_TRIGGER_TYPE] * 2 + [REGISTER_TRIGGER] * 3
    # Every warning points at this file (the user's call), not into the SDK.
    assert {w.filename for w in record if w.category is DeprecationWarning} == {__file__}
    logged = [(r.name, r.getMessage()) for r in caplog.records if r.name == "iii.iii"]
    assert logged == [("iii.iii", REGISTER_TRIGGER_TYPE), ("iii.iii", REGISTER_TRIGGER)]
    first.unregister()
    second.unregister()


def test_the_log_is_once_per_process(make_worker, caplog, fresh_process_record):
    worker = make_worker()
    with caplog.at_level(logging.WARNING, logger="iii.iii"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        worker.register_trigger({"type": "t", "function_id": "f", "config": {}})
        worker.register_trigger({"type": "t", "function_id": "f", "config": {}})
    assert [r.getMessage() for r in caplog.records if r.name == "iii.iii"] == [REGISTER_TRIGGER]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="iii.iii"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        worker.register_trigger({"type": "t", "function_id": "f", "config": {}})
    assert [r for r in caplog.records if r.name == "iii.iii"] == []
    assert "register_trigger" in iii.iii._deprecations_warned


def test_unregister_trigger_type_and_ref_register_function_warn_without_log(
    make_worker, caplog, fresh_process_record
):
    worker = make_worker()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = worker.register_trigger_type({"id": unique("type"), "description": "d"}, Handler())
    caplog.clear()
    fid = unique("fn")
    with caplog.at_level(logging.WARNING, logger="iii.iii"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ref.register_function(fid, lambda data: data)
        worker.unregister_trigger_type({"id": ref.trigger_type_id, "description": "d"})
    assert _deprecations(record) == [REF_REGISTER_FUNCTION, UNREGISTER_TRIGGER_TYPE]
    assert {w.filename for w in record} == {__file__}
    assert [r for r in caplog.records if r.name == "iii.iii"] == []
    wait_registered(worker, fid)  # deprecated, still works


def test_sdk_internal_use_does_not_warn(make_worker, fresh_process_record):
    worker = make_worker()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        off = worker.on_functions_available(lambda functions: None)
        off()
    assert _deprecations(record) == []


def test_subclassing_istream_warns_at_the_class_statement():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        import iii.stream  # noqa: F401  (importing never warns)

        assert record == []

        class Store(IStream):  # the warning points here
            async def get(self, input):
                return None

            async def set(self, input):
                return None

            async def delete(self, input):
                return None

            async def list(self, input):
                return []

            async def list_groups(self, input):
                return []

            async def update(self, input):
                return None

        class Sub(Store):
            pass

    assert [(w.category, str(w.message)) for w in record] == [(FutureWarning, ISTREAM)] * 2
    assert {w.filename for w in record} == {__file__}


def test_docstrings_say_deprecated_since_025():
    for obj in (
        iii.III.register_trigger,
        iii.III.register_trigger_type,
        iii.III.unregister_trigger_type,
        TriggerTypeRef,
        TriggerTypeRef.register_trigger,
        TriggerTypeRef.register_function,
        TriggerHandler,
    ):
        assert ".. deprecated:: 0.25.0" in (obj.__doc__ or ""), obj

"""Deliberate differences from the official iii-sdk 0.11.0 surface (``ALLOWED``) and from the
official iii-sdk 0.25.0 + iii-helpers 0.25.0 surface (``ALLOWED_025``), one reason per decision.

Keys are those printed by tests/test_official_surface.py: ``module:name`` for a missing name,
otherwise where the official package defines the object, e.g. ``module.Class.field`` or
``module.Class.method(param)``. Every key is listed on its own (no wildcards), so a new
difference always shows up; the test also fails on entries that no longer differ.
Keep this short: an entry is a promise that the difference is on purpose and reviewed.
"""

_GROUPS: list[tuple[str, list[str]]] = [
    (
        "Our extra connection options (README, InitOptions docstring): message size limit, "
        "connect timeout, keepalive and offline queue size. All have defaults.",
        [
            "iii.iii_constants.InitOptions.connect_timeout_ms",
            "iii.iii_constants.InitOptions.idle_timeout_ms",
            "iii.iii_constants.InitOptions.max_message_size",
            "iii.iii_constants.InitOptions.offline_queue_limit",
            "iii.iii_constants.InitOptions.ping_interval_ms",
        ],
    ),
    (
        "Listing entries are lenient so that the entry shapes of engine 0.11.0 and of newer "
        "engines both parse (fields omitted or null there): every field has a default.",
        [
            "iii.iii_types.FunctionInfo.function_id",
            "iii.iii_types.TriggerInfo.function_id",
            "iii.iii_types.TriggerInfo.id",
            "iii.iii_types.TriggerInfo.trigger_type",
            "iii.iii_types.TriggerTypeInfo.description",
            "iii.iii_types.TriggerTypeInfo.id",
            "iii.iii_types.WorkerInfo.active_invocations",
            "iii.iii_types.WorkerInfo.connected_at_ms",
            "iii.iii_types.WorkerInfo.function_count",
            "iii.iii_types.WorkerInfo.functions",
            "iii.iii_types.WorkerInfo.id",
            "iii.iii_types.WorkerInfo.status",
        ],
    ),
    (
        "Newer engines: the 'append' stream update op (UpdateAppend) is accepted, and trigger "
        "bindings may carry a namespace.",
        ["iii.state:UpdateOp", "iii.stream:UpdateOp", "iii.triggers.TriggerConfig.namespace"],
    ),
    (
        "Stream change events parse as the engine sends them: custom 'event' changes carry no "
        "'data', and a merge without 'path' merges at the root (the only path engine 0.11.0 merges at).",
        ["iii.stream.StreamChangeEventDetail.data", "iii.stream.UpdateMerge.path"],
    ),
    (
        "TriggerHandler implementations may be plain methods or coroutines (both are awaited "
        "as needed); async implementations written for the official SDK work unchanged.",
        ["iii.triggers.TriggerHandler.register_trigger", "iii.triggers.TriggerHandler.unregister_trigger"],
    ),
    (
        "The IIIClient protocol admits register_function's optional arguments, which "
        "TriggerTypeRef.register_function passes (the official protocol omits them although its "
        "own TriggerTypeRef passes description=).",
        ["iii.types.IIIClient.register_function(args)", "iii.types.IIIClient.register_function(kwargs)"],
    ),
    (
        "Namespaces of the engines after v0.11.0, as in the newer official SDKs (README, engine "
        "generations): the worker's namespace (else III_NAMESPACE), and a call's or binding's own.",
        [
            "iii.iii_constants.InitOptions.namespace",
            "iii.iii_types.RegisterTriggerInput.namespace",
            "iii.iii_types.RegisterTriggerInput.trigger_namespace",
            "iii.iii_types.TriggerRequest.namespace",
        ],
    ),
    (
        "iii-sdk 0.25.0 additions (one package serves both generations): optional fields and "
        "defaults 0.25 added, register_worker() without an address (III_URL, else the default); "
        "0.11 code is unaffected.",
        [
            "iii.iii.register_worker(address)",
            "iii.iii_constants.InitOptions.worker_description",
            "iii.iii_types.AuthResult.allow_trigger_type_registration",
            "iii.iii_types.AuthResult.allowed_functions",
            "iii.iii_types.AuthResult.context",
            "iii.iii_types.AuthResult.forbidden_functions",
            "iii.iii_types.AuthResult.namespaces",
            "iii.iii_types.MiddlewareFunctionInput.namespace",
            "iii.iii_types.OnFunctionRegistrationInput.namespace",
            "iii.iii_types.OnTriggerRegistrationInput.namespace",
            "iii.iii_types.RegisterTriggerMessage.namespace",
            "iii.iii_types.RegisterTriggerMessage.trigger_namespace",
            "iii.iii_types.RegisterTriggerTypeMessage.namespace",
            "iii.iii_types.TriggerRequest.dispatch",
            "iii.iii_types.TriggerRequest.metadata",
        ],
    ),
    (
        "0.25's telemetry settings work for 0.11 code too: OtelConfig.spans_flush_interval_ms / "
        "engine_ws_headers and SharedEngineConnection(headers=) (all defaulted).",
        [
            "iii.telemetry_exporters.SharedEngineConnection.__init__(headers)",
            "iii.telemetry_types.OtelConfig.engine_ws_headers",
            "iii.telemetry_types.OtelConfig.spans_flush_interval_ms",
        ],
    ),
    (
        "0.25's register_function keywords observe= and local_dispatch=, defaulted, so 0.11 calls "
        "are unchanged.",
        [
            "iii.iii.III.register_function(local_dispatch)",
            "iii.iii.III.register_function(observe)",
        ],
    ),
    (
        "0.25's FunctionRef fields behind is_observed() / observers(), defaulted and keyword-only in "
        "practice, so 0.11 code that builds FunctionRef(id, unregister) is unchanged.",
        [
            "iii.iii_constants.FunctionRef._is_observed",
            "iii.iii_constants.FunctionRef._observers",
        ],
    ),
]

ALLOWED: dict[str, str] = {key: reason for reason, keys in _GROUPS for key in keys}


# Deliberate differences from the official iii-sdk 0.25.0 (+ iii-helpers 0.25.0) surface, same rules.
_GROUPS_025: list[tuple[str, list[str]]] = [
    (
        "The official observe runtime's modules observe_wire and reporter are not provided: the Rust core encodes the frames and keeps the reports (importing one fails with ModuleNotFoundError).",
        [
            "iii.observe_wire",
            "iii.reporter",
            "iii:observe_wire",
            "iii:reporter",
        ],
    ),
    (
        "iii.invocation_context re-exports the public names only (InvocationContext, current_invocation): the official runtime's helpers there (the context variable's setters, the thread and exit guards) have no counterpart, the core and iii._observe keep the context.",
        [
            "iii.invocation_context:ActiveInvocation",
            "iii.invocation_context:HandlerExit",
            "iii.invocation_context:T",
            "iii.invocation_context:current_context",
            "iii.invocation_context:guard_exit",
            "iii.invocation_context:original_error",
            "iii.invocation_context:public_context",
            "iii.invocation_context:reset_context",
            "iii.invocation_context:run_in_thread",
            "iii.invocation_context:set_context",
        ],
    ),
    (
        "Observer and ObserverHandle are made by the client over the core's state (constructor arguments differ; users never build them). iii.observable and iii.observer_handle re-export the public names only: the official runtime's internals there (FunctionObservers, ObserveHost, Reporter, wire models, its pure-Python filter compiler, to_observer_state: unknown states are kept as sent) have no counterpart.",
        [
            "iii.observable.Observer.__init__(filter_)",
            "iii.observable.Observer.__init__(function_id)",
            "iii.observable.Observer.__init__(host)",
            "iii.observable.Observer.__init__(info)",
            "iii.observable.Observer.__init__(owner)",
            "iii.observable.Observer.__init__(revision)",
            "iii.observable.Observer.__init__(state)",
            "iii.observable.Observer.__init__(view)",
            "iii.observable:ActiveInvocation",
            "iii.observable:CompiledFilter",
            "iii.observable:FunctionObservers",
            "iii.observable:ObserveHost",
            "iii.observable:ObserverInfoWire",
            "iii.observable:ReportInit",
            "iii.observable:Reporter",
            "iii.observable:compile_filter",
            "iii.observable:current_context",
            "iii.observer_handle.ObserverHandle.__init__(host)",
            "iii.observer_handle.ObserverHandle.__init__(message)",
            "iii.observer_handle.ObserverHandle.__init__(on_dispose)",
            "iii.observer_handle.ObserverHandle.__init__(schedule)",
            "iii.observer_handle.ObserverHandle.__init__(sdk_thread)",
            "iii.observer_handle:ObserveMessage",
            "iii.observer_handle:to_observer_state",
        ],
    ),
    (
        "Internals of the official observe runtime that its iii.iii and iii.iii_types import or define (observe wire models, decoders, reporter, invocation-context helpers): the Rust core encodes and decodes the observe frames and reports, so there is no Python counterpart.",
        [
            "iii.iii:ABSENT",
            "iii.iii:ActivationWire",
            "iii.iii:ActiveInvocation",
            "iii.iii:CallerWire",
            "iii.iii:FunctionObservers",
            "iii.iii:FunctionRegisteredMessage",
            "iii.iii:FunctionStatus",
            "iii.iii:OBSERVE_HOOK_TIMEOUT_S",
            "iii.iii:ObserveResultMessage",
            "iii.iii:ObserverAddedMessage",
            "iii.iii:ObserverRemovedMessage",
            "iii.iii:ObserverStateChangedMessage",
            "iii.iii:Reporter",
            "iii.iii:UnobserveMessage",
            "iii.iii:announce_process",
            "iii.iii:build_observe_message",
            "iii.iii:build_observer_ack",
            "iii.iii:caller_for",
            "iii.iii:current_context",
            "iii.iii:decode_activation",
            "iii.iii:decode_caller",
            "iii.iii:decode_error",
            "iii.iii:decode_observe_depth",
            "iii.iii:guard_exit",
            "iii.iii:observe_descriptor",
            "iii.iii:original_error",
            "iii.iii:public_context",
            "iii.iii:reset_context",
            "iii.iii:run_in_thread",
            "iii.iii:set_context",
            "iii.iii:strip_caller",
            "iii.iii:to_json_value",
            "iii.iii:to_observer_state",
            "iii.iii_types:ActivationWire",
            "iii.iii_types:CallerParent",
            "iii.iii_types:CallerWire",
            "iii.iii_types:DEFAULT_CAPTURE",
            "iii.iii_types:DroppedReportCount",
            "iii.iii_types:ErrorBody",
            "iii.iii_types:FunctionRegisteredMessage",
            "iii.iii_types:FunctionTargetWire",
            "iii.iii_types:IIIMessage",
            "iii.iii_types:InvocationsObservedMessage",
            "iii.iii_types:LegacyTriggerWire",
            "iii.iii_types:LocalInvocationCount",
            "iii.iii_types:LocalInvocationStatsMessage",
            "iii.iii_types:ObserveDescriptor",
            "iii.iii_types:ObserveMessage",
            "iii.iii_types:ObserveResultMessage",
            "iii.iii_types:ObserveSourceWire",
            "iii.iii_types:ObservedInvocationWire",
            "iii.iii_types:ObserverAckMessage",
            "iii.iii_types:ObserverAddedMessage",
            "iii.iii_types:ObserverInfoWire",
            "iii.iii_types:ObserverRemovedMessage",
            "iii.iii_types:ObserverStateChangedMessage",
            "iii.iii_types:UnobserveMessage",
        ],
    ),
    (
        "Observe, local-dispatch and reattach fields of the descriptive wire models and of RemoteFunctionData: this SDK's Rust core builds and parses those frames and keeps that state, so the descriptive models do not carry them.",
        [
            "iii.iii_types.InvokeFunctionMessage.activation",
            "iii.iii_types.InvokeFunctionMessage.caller",
            "iii.iii_types.InvokeFunctionMessage.metadata",
            "iii.iii_types.InvokeFunctionMessage.namespace",
            "iii.iii_types.InvokeFunctionMessage.observe_depth",
            "iii.iii_types.RegisterFunctionMessage.observe",
            "iii.iii_types.UnregisterTriggerTypeMessage.namespace",
            "iii.iii_types.WorkerRegisteredMessage.features",
            "iii.iii_types.WorkerRegisteredMessage.reattach_token",
            "iii.iii_types.WorkerRegisteredMessage.worker_id",
            "iii.types.RemoteFunctionData.call_sync",
            "iii.types.RemoteFunctionData.observe",
        ],
    ),
    (
        "The IIIClient protocol keeps its 0.11 shape: observe is on III.",
        [
            "iii.types.IIIClient.observe",
        ],
    ),
    (
        "register_function keeps 0.11's first parameter func_or_id (a str as 0.25 requires, or a dict / RegisterFunctionInput that 0.11 code passes); the IIIClient protocol keeps its 0.11 shape (add_connection_state_listener is on III).",
        [
            "iii.iii.III.register_function(func_or_id)",
            "iii.iii.III.register_function(function_id)",
            "iii.types.IIIClient.add_connection_state_listener",
            "iii.types.IIIClient.register_function(args)",
            "iii.types.IIIClient.register_function(func)",
            "iii.types.IIIClient.register_function(function_id)",
            "iii.types.IIIClient.register_function(kwargs)",
        ],
    ),
    (
        "InvocationError keeps the 0.11 constructor (code, message, stacktrace) that 0.11 code calls positionally; function_id / invocation_id are not reported by this SDK's core.",
        [
            "iii.errors.InvocationError.__init__(function_id)",
            "iii.errors.InvocationError.__init__(invocation_id)",
            "iii.errors.InvocationError.__init__(stacktrace)",
        ],
    ),
    (
        "InitOptions keeps the 0.11 field order (0.11 code builds it positionally; pass worker_description / namespace by keyword) and our extra connection options (see the 0.11 list).",
        [
            "iii.iii_constants.InitOptions",
            "iii.iii_constants.InitOptions.connect_timeout_ms",
            "iii.iii_constants.InitOptions.idle_timeout_ms",
            "iii.iii_constants.InitOptions.max_message_size",
            "iii.iii_constants.InitOptions.offline_queue_limit",
            "iii.iii_constants.InitOptions.ping_interval_ms",
        ],
    ),
    (
        "TelemetryOptions.amplitude_api_key, which 0.25 dropped, is kept for 0.11 code.",
        [
            "iii.iii_constants.TelemetryOptions.amplitude_api_key",
        ],
    ),
    (
        "TriggerHandler implementations may be plain methods or coroutines (both are awaited as needed), as in the 0.11 list.",
        [
            "iii.triggers.TriggerHandler.register_trigger",
            "iii.triggers.TriggerHandler.unregister_trigger",
        ],
    ),
    (
        "Channel ends are opened by the Rust core with the client's connection settings: no per-end headers parameter; ChannelDirection, ChannelItem and resolve_headers are not re-exported from iii.channels yet (that file belongs to another change): use iii.helpers / iii.iii.",
        [
            "iii.channels.ChannelReader.__init__(headers)",
            "iii.channels.ChannelWriter.__init__(headers)",
            "iii.channels:ChannelDirection",
            "iii.channels:ChannelItem",
            "iii.channels:resolve_headers",
        ],
    ),
    (
        "OtelConfig keeps its 0.11 field order (0.25's spans_flush_interval_ms and engine_ws_headers come last), so positional 0.11 code keeps working.",
        [
            "iii_helpers.observability.telemetry_types.OtelConfig",
        ],
    ),
    (
        "Stream models stay lenient as in the 0.11 list (custom 'event' changes carry no data); StreamUpdateResult keeps per-op errors as an extra field (model_extra['errors']).",
        [
            "iii_helpers.stream.StreamChangeEventDetail.data",
            "iii_helpers.stream.StreamUpdateResult.errors",
        ],
    ),
]

ALLOWED_025: dict[str, str] = {key: reason for reason, keys in _GROUPS_025 for key in keys}

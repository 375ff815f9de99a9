"""Deliberate differences from the official iii-sdk 0.11.0 surface, one reason per decision.

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
]

ALLOWED: dict[str, str] = {key: reason for reason, keys in _GROUPS for key in keys}

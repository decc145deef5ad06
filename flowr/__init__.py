"""Flowr: dynamic state machines built in the Django admin on rules declared in code.

The public API is small: rules in `flowr.rules`, errors here, and methods on the
models (`machine.publish()`, `machine.start()`, `instance.allowed_steps()`,
`instance.step()`); `flowr.builder` changes graphs.
"""
from .exceptions import (
    AlreadyMoved, ChoiceRequired, FlowrError, GraphError, HookFailed, InstanceFinished,
    InvalidStep, MappingInvalid, MigrationError, MoveError, NotPublished,
    RuleConfigurationError, RuleNotRegistered, SettingsInvalid, StepError,
    StepPermissionDenied, StepRefused,
)

__all__ = [
    "AlreadyMoved", "ChoiceRequired", "FlowrError", "GraphError", "HookFailed",
    "InstanceFinished", "InvalidStep", "MappingInvalid", "MigrationError", "MoveError",
    "NotPublished", "RuleConfigurationError",
    "RuleNotRegistered", "SettingsInvalid", "StepError", "StepPermissionDenied", "StepRefused",
]

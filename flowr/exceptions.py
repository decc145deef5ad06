"""Flowr's exceptions: every domain failure is a FlowrError with context attributes."""


class FlowrError(Exception):
    """Base class of every error Flowr raises on purpose."""

    def __init__(self, message, **context):
        super().__init__(message)
        self.message = message
        for key, value in context.items():
            setattr(self, key, value)

    def __str__(self):
        return self.message


class RuleConfigurationError(FlowrError):
    """A rule set declared in code is inconsistent (unknown child, duplicate key, no root)."""


class RuleNotRegistered(FlowrError):
    """A rule or rule set key is not (or no longer) registered in code."""


class GraphError(FlowrError):
    """A change to a machine's graph would break the rules; nothing was changed."""


class SettingsInvalid(GraphError):
    """State settings failed validation by the rule's settings form."""

    def __init__(self, message, errors=None, **context):
        super().__init__(message, errors=errors or {}, **context)


class NotPublished(FlowrError):
    """The machine has no published version to start an instance on."""


class StepError(FlowrError):
    """A step was refused; the instance, its history and its task state are unchanged."""


class InstanceNotActive(StepError):
    """The instance's status (suspended, cancelled, finished, expired) forbids the change."""


class InstanceFinished(InstanceNotActive):
    """The instance is finished (or has no next step) and cannot step."""


class ChoiceRequired(StepError):
    """The current state has several next states and none was chosen."""


class InvalidStep(StepError):
    """The requested next state is not a child of the current state."""


class AlreadyMoved(StepError):
    """The instance changed since the form was shown (double submission, stale page)."""


class StepRefused(StepError):
    """A guard refused the step; raise it from a rule with a human-readable reason."""


class StepPermissionDenied(StepError):
    """The user lacks the permission the target rule requires."""


class HookFailed(StepError):
    """An on_leave/on_enter hook raised; the step was rolled back."""


class MoveError(FlowrError):
    """An instance cannot move to another machine version."""


class OptionsInvalid(GraphError):
    """A state's options (candidate groups, assignment, timing) failed validation."""

    def __init__(self, message, errors=None, **context):
        super().__init__(message, errors=errors or {}, **context)


class TaskStateGone(StepError):
    """A kept version of an instance's task state is no longer there (expired, replaced)."""


class ControlError(FlowrError):
    """An operator control (cancel, suspend, resume, move to state, undo) was refused."""


class ReasonRequired(ControlError):
    """An operator control needs a reason (it is written to the history)."""


class ControlPermissionDenied(ControlError):
    """The user lacks the permission of the operator control."""


class StatusForbids(InstanceNotActive, ControlError):
    """The instance's status forbids the operator control (e.g. resuming an active one)."""


class UnknownState(ControlError):
    """The target of a move is not a state of the instance's machine version."""


class UndoRefused(ControlError):
    """The last step cannot be undone: something happened since, or its task state is gone."""


class MigrationError(FlowrError):
    """A migration of instances between versions cannot be planned, run or reverted."""


class MappingInvalid(MigrationError):
    """A migration's state mapping is incomplete or names a target the rules refuse.

    `errors` maps each source state key to the reason its row is refused.
    """

    def __init__(self, message, errors=None, **context):
        super().__init__(message, errors=errors or {}, **context)


class AssignmentError(FlowrError):
    """A claim, assignment or unassignment was refused; the instance is unchanged."""


class AlreadyAssigned(AssignmentError):
    """Someone else has the instance (e.g. they claimed it a moment earlier)."""


class NotACandidate(AssignmentError):
    """The user is not a candidate of the instance's current state."""

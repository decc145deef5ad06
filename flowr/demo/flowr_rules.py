"""Demo rule sets: the flowr example, order approval and a support ticket."""
from django import forms

from flowr.rules import Rule, RuleSet, register

# -- The django-flowr example: A→[B, C], C→[D, E] with multiple paths, E→[A]. --------


class A(Rule):
    """Start of the flowr example."""
    children = ["B", "C"]


class B(Rule):
    """A dead end."""


class C(Rule):
    """May branch into D and E."""
    children = ["D", "E"]
    multiple_paths = True


class D(Rule):
    """A dead end."""


class E(Rule):
    """Loops back to A."""
    children = ["A"]


register(RuleSet("flowr_example", "Flowr example", root=A, rules=[A, B, C, D, E],
                 description="The example graph of django-flowr 0.2.0."))


# -- Order approval: branching, a rework loop, settings, a step form, a permission. ---

class ApprovalSettings(forms.Form):
    max_amount = forms.IntegerField(min_value=0, initial=1000,
                                    help_text="Largest order amount this step may approve.")


class RejectionForm(forms.Form):
    reason = forms.CharField(max_length=200, help_text="Why the order is rejected.")


class Draft(Rule):
    """An order being written."""
    children = ["Submitted"]
    # Searchable in the instance list (projected from the task state on every change).
    search_fields = ["customer", "amount", "rejection_reason"]


class Submitted(Rule):
    """An order waiting for review."""
    children = ["Approved", "Rejected", "Rework"]
    multiple_paths = True


class Rework(Rule):
    """Sent back to the author for changes."""
    children = ["Submitted"]
    display_name = "Needs rework"


class Approved(Rule):
    """Approved by a manager."""
    children = ["Shipped"]
    settings_form = ApprovalSettings
    permission = "flowr_demo.approve_order"

    def on_enter(self, instance):
        instance.task_state["approved_limit"] = self.settings.get("max_amount")


class Rejected(Rule):
    """Rejected; the order ends here."""
    step_form = RejectionForm
    outcome = "rejected"

    def on_enter(self, instance):
        reason = instance.step_data.get("reason")
        if reason:
            instance.task_state["rejection_reason"] = reason


class Shipped(Rule):
    """Shipped to the customer."""
    outcome = "shipped"


register(RuleSet("orders", "Order approval", root=Draft,
                 rules=[Draft, Submitted, Rework, Approved, Rejected, Shipped],
                 description="Orders are submitted, then approved, rejected or sent back."))


# -- Support ticket: a cycle, a guard and hooks writing the task state. -------------

class New(Rule):
    """A ticket just opened by a customer."""
    children = ["Open"]
    search_fields = ["customer", "priority"]


class Open(Rule):
    """Someone is working on the ticket."""
    children = ["Waiting", "Resolved"]
    multiple_paths = True

    def on_enter(self, instance):
        state = instance.task_state
        state["times_opened"] = state.get("times_opened", 0) + 1


class Waiting(Rule):
    """Waiting for the customer's answer."""
    children = ["Open"]
    display_name = "Waiting on customer"

    def on_leave(self, instance):
        instance.task_state["customer_confirmed"] = True


class Resolved(Rule):
    """A fix was delivered."""
    children = ["Closed", "Open"]
    multiple_paths = True


class Closed(Rule):
    """Closed for good; only once the customer confirmed."""
    outcome = "closed"

    def guard_enter(self, instance, source):
        if not instance.task_state.get("customer_confirmed"):
            return ("the customer has not confirmed the fix yet; wait on the customer "
                    "first (or set customer_confirmed in the task state).")
        return None


register(RuleSet("support", "Support ticket", root=New,
                 rules=[New, Open, Waiting, Resolved, Closed],
                 description="Tickets cycle between open and waiting until resolved."))


# -- Leave request: deadlines (set on the demo machine's states), a guard that makes an
#    automatic step fail, so an incident appears. ------------------------------------

class Requested(Rule):
    """A leave request waiting for the team lead."""
    children = ["Escalated", "Granted"]
    multiple_paths = True

    def on_enter(self, instance):
        instance.task_state.setdefault("days", 3)


class Escalated(Rule):
    """Nobody answered in time: the manager decides."""
    children = ["Granted", "Declined"]
    multiple_paths = True
    display_name = "Escalated to the manager"


class Granted(Rule):
    """Leave granted; long leave needs the manager's OK."""

    def guard_enter(self, instance, source):
        days = instance.task_state.get("days", 0)
        if days > 10 and not instance.task_state.get("manager_ok"):
            return (f"a request for {days} days needs the manager's OK; set manager_ok to "
                    f"true in the task state first.")
        return None


class Declined(Rule):
    """Leave declined."""
    outcome = "declined"


register(RuleSet("leave", "Leave request", root=Requested,
                 rules=[Requested, Escalated, Granted, Declined],
                 description="Requests time out to the manager, who is deemed to agree "
                             "after a while: deadlines, reminders and incidents."))

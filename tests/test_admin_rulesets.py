"""Rule-set pages: read-only, with their rules, flags, forms and a diagram."""
import re

import pytest
from django.urls import reverse

from flowr.models import RuleSetRecord

pytestmark = pytest.mark.django_db


# -- rule sets (read-only) ----------------------------------------------------------------

def test_rule_set_page_lists_rules_flags_and_diagram(staff_client):
    record = RuleSetRecord.objects.get(key="orders")
    response = staff_client.get(reverse("admin:flowr_rulesetrecord_change", args=[record.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html
    row = re.search(r'<tr class="flowr-rule-row" id="rule-orders.Submitted"[^>]*>(.*?)</tr>',
                    html, re.S).group(1)
    assert "An order waiting for review." in row
    assert "Approved, Rejected, Needs rework" in row
    assert "multiple paths" in row and "at most 3 children" in row
    approved = re.search(r'id="rule-orders.Approved"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert "Settings: max_amount" in approved and "needs flowr_demo.approve_order" in approved
    assert "<strong>Max amount</strong> <code>max_amount</code> · integer, required, initially " \
           "1000" in approved
    assert 'name="_save"' not in html  # read-only


def test_rule_set_page_of_unregistered_rule_set_warns(staff_client):
    record = RuleSetRecord.objects.create(key="gone", name="Gone", root_rule_key="gone.X",
                                          is_registered=False)
    response = staff_client.get(reverse("admin:flowr_rulesetrecord_change", args=[record.pk]))
    assert response.status_code == 200
    assert "Rule set &#x27;gone&#x27; is not registered" in response.content.decode()


def test_rule_sets_cannot_be_added_or_changed(staff_client):
    record = RuleSetRecord.objects.get(key="orders")
    assert staff_client.get(reverse("admin:flowr_rulesetrecord_add")).status_code == 403
    response = staff_client.post(reverse("admin:flowr_rulesetrecord_change", args=[record.pk]),
                                 {"name": "Hacked"})
    assert response.status_code == 403
    record.refresh_from_db()
    assert record.name == "Order approval"

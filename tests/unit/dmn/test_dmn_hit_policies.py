"""Hit policies and aggregations, on tests/data/dmn/hit_policies.dmn (one decision per policy)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine import dmn
from engine.errors import DecisionError

DATA = Path(__file__).resolve().parents[2] / "data" / "dmn"


@pytest.fixture(scope="module")
def model() -> dmn.DecisionModel:
    return dmn.load(DATA / "hit_policies.dmn")


def test_unique_gives_the_one_matching_rule(model):
    result = model.evaluate("unique_discount", {"customer": "gold", "amount": 150})
    assert result.value == Decimal("0.15")
    assert result.matched_rules == ["gold_large"]


def test_unique_with_no_match_is_null(model):
    result = model.evaluate("unique_discount", {"customer": "bronze", "amount": 150})
    assert result.value is None
    assert result.matched_rules == []


def test_unique_with_two_matches_names_file_decision_and_both_rules(model):
    with pytest.raises(DecisionError) as info:
        model.evaluate("unique_discount", {"customer": "vip", "amount": 2000})
    message = str(info.value)
    assert "hit_policies.dmn" in message
    assert "unique_discount" in message
    assert "vip_any" in message and "vip_huge" in message
    assert info.value.rules == ["vip_any", "vip_huge"]
    assert info.value.decision == "unique_discount"


def test_hit_policy_defaults_to_unique(model):
    assert model.decisions["default_hit_policy"].hit_policy == "UNIQUE"
    with pytest.raises(DecisionError, match="positive_a, positive_b"):
        model.evaluate("default_hit_policy", {"amount": 5})


def test_any_with_agreeing_matches(model):
    result = model.evaluate("any_verdict", {"score": 90})
    assert result.value == "approve"
    assert result.matched_rules == ["pass_50", "pass_80"]


def test_any_with_conflicting_outputs_is_an_error_naming_the_rules(model):
    with pytest.raises(DecisionError) as info:
        model.evaluate("any_verdict", {"score": -5})
    assert '"reject"' in str(info.value) and '"review"' in str(info.value)
    assert info.value.rules == ["negative", "small_negative"]


@pytest.mark.parametrize(("age", "risk", "rule"), [(16, "high", "minor"), (20, "medium", "young"),
                                                   (40, "low", "anyone")])
def test_priority_follows_output_values_order_not_rule_order(model, age, risk, rule):
    result = model.evaluate("priority_risk", {"age": age})
    assert result.value == risk
    assert result.matched_rules == [rule]


@pytest.mark.parametrize(("weight", "method"), [(20, "freight"), (5, "parcel"), (1, "letter")])
def test_first_takes_the_first_match_in_rule_order(model, weight, method):
    assert model.evaluate("first_shipping", {"weight": weight}).value == method


def test_rule_order_lists_every_match_in_rule_order(model):
    result = model.evaluate("rule_order_labels", {"amount": 150})
    assert result.value == [{"label": "positive", "rank": 1}, {"label": "large", "rank": 2},
                            {"label": "any", "rank": 3}]
    assert result.matched_rules == ["positive", "large", "anything"]


def test_output_order_sorts_by_output_values(model):
    result = model.evaluate("output_order_labels", {"amount": 150})
    assert [row["label"] for row in result.value] == ["large", "positive", "any"]
    assert result.matched_rules == ["large", "positive", "anything"]


def test_multi_hit_with_no_match_is_an_empty_list(model):
    assert model.evaluate("rule_order_labels", {"amount": None}).value == [{"label": "any", "rank": 3}]
    assert model.evaluate("collect_fees", {"items": 0}).value == []


@pytest.mark.parametrize(("decision", "items", "expected"), [
    ("collect_fees", 150, [5, 10, 20]),
    ("collect_fees", 50, [5, 10]),
    ("collect_sum", 150, 35),
    ("collect_sum", 5, 5),
    ("collect_min", 150, 5),
    ("collect_max", 150, 20),
    ("collect_count", 150, 3),
    ("collect_count", 50, 2),
    # nothing matches
    ("collect_count", 0, 0),
    ("collect_sum", 0, None),
    ("collect_min", 0, None),
    ("collect_max", 0, None),
])
def test_collect_and_its_aggregations(model, decision, items, expected):
    assert model.evaluate(decision, {"items": items}).value == expected


@pytest.mark.parametrize(("decision", "aggregation", "expected"), [
    ("short_sum", "SUM", 35), ("short_min", "MIN", 5), ("short_max", "MAX", 20), ("short_count", "COUNT", 3)])
def test_collect_short_forms(decision, aggregation, expected):
    model = dmn.load(DATA / "collect_short_forms.dmn")
    assert model.decisions[decision].hit_policy == "COLLECT"
    assert model.decisions[decision].aggregation == aggregation
    assert model.evaluate(decision, {"items": 150}).value == expected


def test_several_outputs_give_a_dict_keyed_by_output_name(model):
    assert model.evaluate("unique_multi_output", {"amount": 3}).value == {"band": "low", "limit": 10}
    assert model.evaluate("unique_multi_output", {"amount": 12.5}).value == {"band": "high", "limit": 25}


def test_default_output_entries_when_nothing_matches(model):
    result = model.evaluate("default_when_no_match", {"amount": 50})
    assert result.value == {"band": "unknown", "limit": 0}
    assert result.matched_rules == []
    assert model.evaluate("default_when_no_match", {"amount": 5}).value == {"band": "low", "limit": 10}
    assert model.evaluate("collect_with_default", {"amount": 5}).value == ["none"]
    assert model.evaluate("collect_with_default", {"amount": 500}).value == ["big"]


def test_collect_sum_of_text_is_an_error(make_dmn, make_table):
    xml = make_table([["-"], ["-"]], ['"a"', "1"], inputs=[("x", None)], hit_policy="COLLECT")
    xml = xml.replace('hitPolicy="COLLECT"', 'hitPolicy="COLLECT" aggregation="SUM"')
    model = dmn.load(make_dmn(xml), filename="sum.dmn")
    with pytest.raises(DecisionError, match=r"sum\.dmn.*COLLECT SUM needs numbers, but rule r1"):
        model.evaluate("d", {"x": 1})


def test_first_stops_at_the_first_match(make_dmn, make_table):
    xml = make_table([["> 0"], ["> 0"]], ['"first"', '"second"'], inputs=[("x", None)], out_type="string")
    model = dmn.load(make_dmn(xml))
    result = model.evaluate("d", {"x": 1})
    assert (result.value, result.matched_rules) == ("first", ["r1"])


@pytest.mark.parametrize(("aggregation", "expected"), [
    ("SUM", {"premium": 350, "fee": 30}),
    ("MIN", {"premium": 150, "fee": 10}),
    ("MAX", {"premium": 200, "fee": 20}),
    ("COUNT", {"premium": 2, "fee": 2}),
])
def test_aggregation_over_several_outputs_aggregates_each_column(make_dmn, aggregation, expected):
    model = dmn.load(make_dmn(f"""
        <decision id="cost" name="Cost"><decisionTable hitPolicy="COLLECT" aggregation="{aggregation}">
          <input><inputExpression typeRef="number"><text>years</text></inputExpression></input>
          <output name="premium" typeRef="number"/><output name="fee" typeRef="number"/>
          <rule><inputEntry><text>&gt;1</text></inputEntry><outputEntry><text>150</text></outputEntry>
                <outputEntry><text>10</text></outputEntry></rule>
          <rule><inputEntry><text>&gt;2</text></inputEntry><outputEntry><text>200</text></outputEntry>
                <outputEntry><text>20</text></outputEntry></rule>
          <rule><inputEntry><text>&gt;9</text></inputEntry><outputEntry><text>999</text></outputEntry>
                <outputEntry><text>99</text></outputEntry></rule>
        </decisionTable></decision>"""))
    assert model.evaluate("Cost", {"years": 3}).value == expected
    nothing = model.evaluate("Cost", {"years": 0}).value
    assert nothing == ({"premium": 0, "fee": 0} if aggregation == "COUNT" else None)

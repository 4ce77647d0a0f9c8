"""Decisions that require other decisions: evaluation order, and the names a required result is read by."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import dmn
from engine.errors import DecisionError

DATA = Path(__file__).resolve().parents[2] / "data" / "dmn"


@pytest.fixture(scope="module")
def model() -> dmn.DecisionModel:
    return dmn.load(DATA / "several_decisions.dmn")


def test_required_result_read_by_output_name(model):
    # credit_limit's input expression is `riskLevel`: the output column name of risk_level (Camunda style)
    assert model.evaluate("credit_limit", {"Applicant Age": 20}).value == 1000
    assert model.evaluate("credit_limit", {"Applicant Age": 40}).value == 5000


def test_required_result_read_by_decision_name(model):
    # approval_by_name reads `Risk Level` and `Credit Limit`: the decision names (DMN style, with spaces)
    assert model.evaluate("approval_by_name", {"Applicant Age": 40}).value is True
    assert model.evaluate("approval_by_name", {"Applicant Age": 20}).value is False


def test_required_decisions_are_evaluated_first_and_reported(model):
    result = model.evaluate("approval_by_name", {"Applicant Age": 40})
    assert [r.decision_id for r in result.required] == ["risk_level", "credit_limit"]
    assert [r.decision_id for r in result.required[1].required] == ["risk_level"]
    assert result.required[1].matched_rules == ["limit_low"]


def test_multi_output_required_decision_exposes_each_output_name(model):
    # invoice_line reads `price` and `currency`, the two outputs of pricing
    result = model.evaluate("invoice_line", {"amount": 200})
    assert result.value == "180 EUR"
    assert result.required[0].value == {"price": 180, "currency": "EUR"}


def test_literal_expression_decision_reads_by_decision_name_and_path(model):
    # summary is `Pricing.currency + ":" + string(Pricing.price) + ":" + Risk Level`
    result = model.evaluate("summary", {"amount": 50, "Applicant Age": 30})
    assert result.value == "EUR:50:low"
    assert result.matched_rules == []


def test_collect_result_is_a_list_under_both_names(model):
    # tag_count is `count(tag) * 10 + count(Collected Tags)`
    assert model.evaluate("tag_count", {"amount": 500}).value == 22
    assert model.evaluate("tag_count", {"amount": 5}).value == 11


def test_decision_found_by_name_with_did_you_mean(model):
    assert model.decision("Credit Limit").id == "credit_limit"
    assert model.decision("credit limit").id == "credit_limit"
    with pytest.raises(DecisionError, match="no decision 'credit_limt'. Did you mean 'credit_limit'?"):
        model.evaluate("credit_limt", {})


def test_as_dict_is_json_and_nests_required_results(model):
    data = model.evaluate("invoice_line", {"amount": 200}).as_dict()
    assert json.loads(json.dumps(data)) == {
        "decision_id": "invoice_line", "decision_name": "Invoice Line", "value": "180 EUR",
        "matched_rules": ["line_eur"],
        "required": [{"decision_id": "pricing", "decision_name": "Pricing",
                      "value": {"price": 180, "currency": "EUR"}, "matched_rules": ["price_large"],
                      "required": []}],
    }


def test_required_result_overrides_a_caller_variable_of_the_same_name(model):
    assert model.evaluate("credit_limit", {"Applicant Age": 20, "riskLevel": "low"}).value == 1000


def test_context_must_be_a_mapping(model):
    with pytest.raises(DecisionError, match="the context must be a mapping"):
        model.evaluate("credit_limit", ["not", "a", "mapping"])  # type: ignore[arg-type]

"""The dashboard's template filters, as plain functions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dashboard.templatetags.dash import money

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0, "0.00"),
        (None, "0.00"),
        (Decimal("0.0000002"), "< 0.0001"),
        (0.0000012, "< 0.0001"),
        (0.0001, "0.00010"),
        (0.000456, "0.00046"),
        (0.00999, "0.010"),
        (0.0123, "0.012"),
        (0.5, "0.50"),
        (0.999, "1.00"),
        (Decimal("12.345"), "12.35"),
        (1234.5, "1,234.50"),
        (-0.5, "-0.50"),
    ],
)
def test_it_writes_money_at_a_sensible_precision(amount, text):
    assert money(amount) == text


def test_it_keeps_the_amount_and_its_currency_together():
    assert money(0.0000012, "USD") == f"< 0.0001{NBSP}USD"
    assert money(0.0123, "EUR") == f"0.012{NBSP}EUR"

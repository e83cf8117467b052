from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from batchsms.plan.campaign import PricingConfig
from batchsms.plan.pricing import PriceTable


def table(default="0.05", **countries):
    return PriceTable.from_config(PricingConfig(
        currency="EUR", default=Decimal(default),
        countries={k: Decimal(v) for k, v in countries.items()}))


def test_unit_prices_by_country_with_default():
    prices = table(DK="0.04", US="0.0079")
    assert prices.places == 4
    units = prices.unit_prices(pd.Series(["DK", "US", None, "FR"], dtype="str"))
    assert units.tolist() == [400, 79, 500, 500]


def test_no_float_drift_over_many_rows():
    prices = table("0.1")
    units = prices.unit_prices(pd.Series(["SE"] * 1_000_003, dtype="str"))
    total = prices.money(int(units.sum()))
    assert total == Decimal("100000.30")
    naive = 0.0
    for _ in range(1_000_003):  # what adding binary floats row by row gives
        naive += 0.1
    assert naive != 100000.3


def test_format_column_is_exact_fixed_point():
    prices = table("0.05", US="0.0079")
    formatted = prices.format_column(pd.Series([0, 79, 316, 12345678], dtype="Int64"))
    assert formatted.tolist() == ["0.0000", "0.0079", "0.0316", "1234.5678"]


@given(units=st.lists(st.integers(0, 10**12), max_size=30), places=st.sampled_from(["1", "0.5",
                                                                                 "0.0079"]))
def test_format_column_equals_format_row_by_row(units, places):
    prices = table(places)
    formatted = prices.format_column(pd.Series(units, index=range(7, 7 + len(units)),
                                               dtype="Int64"))
    assert formatted.tolist() == [prices.format(u) for u in units]
    assert formatted.index.tolist() == list(range(7, 7 + len(units)))
    assert formatted.dtype == "string"


def test_at_least_two_places():
    prices = table("1")
    assert prices.places == 2
    assert prices.format(150) == "1.50"


@given(prices=st.lists(st.decimals(min_value=0, max_value=5, places=5), min_size=1, max_size=4),
       segments=st.lists(st.integers(1, 10), min_size=1, max_size=20))
def test_totals_equal_decimal_arithmetic(prices, segments):
    countries = {code: str(p) for code, p in zip(["DK", "FR", "US", "SE"], prices, strict=False)}
    pt = table(str(prices[0]), **countries)
    codes = [list(countries)[i % len(countries)] for i in range(len(segments))]
    units = pt.unit_prices(pd.Series(codes, dtype="str")) * np.array(segments)
    expected = sum(Decimal(countries[c]) * s for c, s in zip(codes, segments, strict=True))
    assert pt.money(int(units.sum())) == expected

"""Prices per segment by country, with exact money arithmetic.

Prices are held as whole numbers of the smallest unit any configured price uses
(e.g. 0.0079 EUR → units of 0.0001 EUR), so column-wise costs and totals are integer
arithmetic: no float drift, however many rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchsms.plan.campaign import PricingConfig


@dataclass(frozen=True)
class PriceTable:
    currency: str
    places: int  # decimal places of the money unit used inside
    default: int  # in units of 10**-places
    countries: dict[str, int]

    @classmethod
    def from_config(cls, config: PricingConfig) -> PriceTable:
        prices = [config.default, *config.countries.values()]
        places = max(max(-p.normalize().as_tuple().exponent, 0) for p in prices)  # type: ignore[operator]
        places = max(places, 2)
        unit = Decimal(1).scaleb(-places)

        def units(price: Decimal) -> int:
            return int(price / unit)

        return cls(config.currency, places, units(config.default),
                   {k: units(v) for k, v in config.countries.items()})

    def unit_prices(self, countries: pd.Series) -> np.ndarray:
        """Price per segment, in units, for each row's country (default where unknown)."""
        codes = pc.index_in(pa.array(countries, pa.large_string()),
                            value_set=pa.array(list(self.countries), pa.large_string()))
        table = np.array([*self.countries.values(), self.default], dtype=np.int64)
        return table[pc.fill_null(codes, -1).to_numpy()]  # -1 (no price listed): the default

    def money(self, units: int) -> Decimal:
        """``units`` as an exact Decimal amount with this table's decimal places."""
        return Decimal(int(units)).scaleb(-self.places)

    def format(self, units: int) -> str:
        return f"{self.money(units):.{self.places}f}"

    def format_column(self, units: pd.Series) -> pd.Series:
        """Costs as fixed-point text (e.g. ``0.0316``), exact, for reports.

        Each distinct amount is formatted once (a plan holds few: segments times prices)
        and the texts are taken by Arrow; pandas' string arithmetic costs ten times more."""
        values = units.astype("int64").to_numpy()
        codes, distinct = pd.factorize(values)
        scale = 10**self.places
        texts = pa.array([f"{int(u) // scale}.{str(int(u) % scale).zfill(self.places)}"
                          for u in distinct], pa.large_string())
        return pd.Series(pd.array(texts.take(pa.array(codes)), dtype="string"),
                         index=units.index)

from __future__ import annotations

import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from batchsms.plan import phone_columns
from batchsms.plan.phone_columns import normalize
from batchsms.plan.phones import TEXT_ESCAPES, Normalized, normalize_one

FR_FIXED = phonenumbers.example_number_for_type("FR", PhoneNumberType.FIXED_LINE)
DK_TOLL_FREE = phonenumbers.example_number_for_type("DK", PhoneNumberType.TOLL_FREE)
DK_PREMIUM = phonenumbers.example_number_for_type("DK", PhoneNumberType.PREMIUM_RATE)
GB_MOBILE = phonenumbers.example_number_for_type("GB", PhoneNumberType.MOBILE)
NO_REGION = "not a valid number (no country code and no default_region)"
LOST = ("digits lost to scientific notation (4.5123E+09): format the phone column as text "
        "and export again")


def ok(e164: str, country: str) -> Normalized:
    return Normalized(e164, country, None)


def bad(reason: str) -> Normalized:
    return Normalized(None, None, reason)


DK = ok("+4520123456", "DK")
FR = ok("+33612345678", "FR")

# (raw, default_region, country column value, expected)
CASES = [
    ("+45 20 12 34 56", None, None, DK),
    ("+45.20.12.34.56", None, None, DK),
    ("+45-20-12-34-56", None, None, DK),
    ("+45 (20) 12 34 56", "FR", None, DK),
    ("+45 20/12/34/56", None, None, DK),
    ("[+45] 20 12 34 56", None, None, DK),
    ("+45\u00a020\u200912\u202f34 56 ", None, None, DK),
    ("  +45 20 12 34 56\t", None, None, DK),
    ("0045 20 12 34 56", "US", None, DK),
    ("tel:+45-20-12-34-56", None, None, DK),
    ("TEL:0045 20123456", None, None, DK),
    ("+33 6 12 34 56 78", "DK", None, FR),
    ("0033 6 12 34 56 78", "US", None, FR),
    # national numbers and the lost "+"
    ("20 12 34 56", "DK", None, DK),
    ("4520123456", "DK", None, DK),
    ("4520123456", None, None, DK),
    ("33612345678", "DK", None, FR),
    ("33612345678", None, None, FR),
    ("06 12 34 56 78", "FR", None, FR),
    ("06.12.34.56.78", "fr", None, FR),
    ("612345678", "FR", None, FR),
    ("06 12 34 56 78", None, None, bad(NO_REGION)),
    ("(201) 555-0123", "US", None, ok("+12015550123", "US")),
    ("1 201 555 0123", "US", None, ok("+12015550123", "US")),
    ("(416) 555-0123", "US", None, ok("+14165550123", "CA")),
    ("+1 416 555 0123", None, None, ok("+14165550123", "CA")),
    ("+1 (201) 555-0123", "DK", None, ok("+12015550123", "US")),
    ("011 45 20 12 34 56", "US", None, DK),
    (phonenumbers.format_number(GB_MOBILE, PhoneNumberFormat.INTERNATIONAL), None, None,
     ok("+447400123456", "GB")),
    ("07400 123456", "GB", None, ok("+447400123456", "GB")),
    ("+44 (0)7400 123456", None, None, ok("+447400123456", "GB")),
    # the country column
    ("06 12 34 56 78", "DK", "FR", FR),
    ("06 12 34 56 78", "DK", " fr ", FR),
    ("06 12 34 56 78", "FR", "", FR),
    ("06 12 34 56 78", "FR", None, FR),
    ("20 12 34 56", None, "DK", DK),
    ("06 12 34 56 78", "DK", "France",
     bad("unknown country 'France' in the country column: use a two-letter ISO code")),
    ("+33 6 12 34 56 78", None, "France", FR),
    ("20 12 34 56", "DK", "FR", bad("not a valid number for FR")),
    # spreadsheet artefacts
    ("4520123456.0", "DK", None, DK),
    ("20123456.0", "DK", None, DK),
    ("4.520123456E+09", "DK", None, DK),
    ("4.520123456e9", None, None, DK),
    ("4,520123456E+09", None, None, DK),
    ("4.5201234560E+09", None, None, DK),
    ("4.5123E+09", "DK", None, bad(LOST)),
    ("4.52012345678E+09", "DK", None, bad("not a phone number")),
    # junk and empty cells
    ("abc", "DK", None, bad("not a phone number")),
    ("call 20 12 34 56", "DK", None, bad("not a phone number")),
    ("20 12 34 56 ext 12", "DK", None, bad("not a phone number")),
    ("20,12,34,56", "DK", None, bad("not a phone number")),
    ("+", "DK", None, bad("not a phone number")),
    ("++45 20 12 34 56", "DK", None, bad("not a phone number")),
    ("２０１２３４５６", "DK", None, bad("not a phone number")),
    ("", "DK", None, bad("no phone number")),
    ("   ", "DK", None, bad("no phone number")),
    ("-", "DK", None, bad("no phone number")),
    ("tel:", "DK", None, bad("no phone number")),
    (None, "DK", None, bad("no phone number")),
    # invalid numbers
    ("+45 1234", None, None, bad("not a valid number for +45")),
    ("+45 20 12 34 567", "DK", None, bad("not a valid number for +45")),
    ("+999 123 456", None, None, bad("not a valid number: unknown country code")),
    ("+0 20 12 34 56", None, None, bad("not a valid number: unknown country code")),
    ("1234", "DK", None, bad("not a valid number for DK")),
    ("12", "FR", None, bad("not a valid number for FR")),
    ("0123456789", None, None, bad(NO_REGION)),
    ("06 12 34 56 78", "DK", "US", bad("not a valid number for US")),
    # valid, but not for SMS
    (phonenumbers.format_number(FR_FIXED, PhoneNumberFormat.NATIONAL), "FR", None,
     Normalized("+33123456789", "FR", "fixed line: cannot receive SMS")),
    (phonenumbers.format_number(FR_FIXED, PhoneNumberFormat.INTERNATIONAL), None, None,
     Normalized("+33123456789", "FR", "fixed line: cannot receive SMS")),
    (phonenumbers.format_number(DK_TOLL_FREE, PhoneNumberFormat.NATIONAL), "DK", None,
     Normalized("+4580123456", "DK", "toll-free number: cannot receive SMS")),
    (phonenumbers.format_number(DK_PREMIUM, PhoneNumberFormat.E164), None, None,
     Normalized("+4590123456", "DK", "premium-rate number: cannot receive SMS")),
    ("+800 1234 5678", None, None,
     Normalized("+80012345678", "001", "toll-free number: cannot receive SMS")),
]


@pytest.mark.parametrize(("raw", "default", "region", "expected"), CASES)
def test_normalize_one(raw: str | None, default: str | None, region: str | None,
                       expected: Normalized) -> None:
    assert normalize_one(raw, default, region) == expected


def _rows(frame: pd.DataFrame) -> list[Normalized]:
    return [Normalized(*(None if pd.isna(value) else value for value in row))
            for row in frame[["e164", "country", "reason"]].itertuples(index=False)]


@pytest.mark.parametrize("default", sorted({case[1] for case in CASES}, key=str))
def test_normalize_table(default: str | None) -> None:
    cases = [case for case in CASES if case[1] == default]
    index = pd.RangeIndex(2, 2 + len(cases))
    raw = pd.Series([case[0] for case in cases], index=index, dtype="str")
    regions = pd.Series([case[2] for case in cases], index=index, dtype="str")
    result = normalize(raw, default, regions)
    assert result.index.equals(index)
    assert list(result.columns) == ["e164", "country", "reason"]
    assert all(dtype == "str" for dtype in result.dtypes)
    assert _rows(result) == [case[3] for case in cases]


def test_normalize_without_country_column_and_on_object_dtype() -> None:
    raw = pd.Series(["+45 20 12 34 56", None, float("nan"), "06 12 34 56 78"], dtype=object)
    assert _rows(normalize(raw, "FR")) == [DK, bad("no phone number"), bad("no phone number"), FR]


def test_normalize_empty_column() -> None:
    result = normalize(pd.Series([], dtype="str"), "DK")
    assert result.empty
    assert list(result.columns) == ["e164", "country", "reason"]


def test_normalize_many_rows_matches_reference() -> None:
    cases = [case for case in CASES if case[1] == "DK"]
    raw = pd.Series([case[0] for case in cases] * 4_000, dtype="str")
    regions = pd.Series([case[2] for case in cases] * 4_000, dtype="str")
    expected = [normalize_one(case[0], "DK", case[2]) for case in cases] * 4_000
    assert _rows(normalize(raw, "DK", regions)) == expected


def test_bad_default_region_and_index() -> None:
    with pytest.raises(ValueError, match="default_region 'Denmark'"):
        normalize_one("20 12 34 56", "Denmark")
    with pytest.raises(ValueError, match="default_region"):
        normalize(pd.Series(["20 12 34 56"]), "XX")
    with pytest.raises(ValueError, match="same index"):
        normalize(pd.Series(["20 12 34 56"]), "DK", pd.Series(["DK"], index=[5]))


KINDS = [PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
         PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST, PhoneNumberType.VOIP,
         PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.PAGER, PhoneNumberType.UAN,
         PhoneNumberType.VOICEMAIL]
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
SOURCES = [(region, number) for region in REGIONS for kind in KINDS
           if (number := phonenumbers.example_number_for_type(region, kind)) is not None]
SOURCES += [(None, phonenumbers.example_number_for_non_geo_entity(code))
            for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)]
STYLES = ["e164", "international", "national", "national", "lost plus", "00"]


def _written(number: phonenumbers.PhoneNumber, style: str) -> str:
    if style == "national":
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if style == "international":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return {"e164": e164, "lost plus": e164[1:], "00": "00" + e164[1:]}[style]


def _variants(text: str) -> list[str]:
    """The text, and the text with a digit or two dropped, added or changed."""
    digits = [i for i, char in enumerate(text) if char.isdigit()]
    first, middle, last = digits[0], digits[len(digits) // 2], digits[-1]
    head, tail = text[:first], text[first:]
    return [text, *(text[:at] + text[at + 1:] for at in (first, middle, last)),
            *(head + extra + tail for extra in ("0", "1", "8", "00", "11")),
            text + "5", text[:last] + "9"]


def test_fast_path_equals_reference_for_every_region() -> None:
    rows = [(variant, region)
            for region, number in SOURCES for style in ("national", "lost plus")
            for variant in _variants(_written(number, style))]
    raw = pd.Series([text for text, _ in rows], dtype="str")
    regions = pd.Series([region for _, region in rows], dtype="str")
    expected = [normalize_one(text, None, region) for text, region in rows]
    assert _rows(normalize(raw, None, regions)) == expected


@st.composite
def cells(draw: st.DrawFn) -> tuple[str, str | None]:
    source, number = draw(st.sampled_from(SOURCES))
    chars = list(_written(number, draw(st.sampled_from(STYLES))))
    for _ in range(draw(st.integers(0, 2))):
        digits = [i for i, char in enumerate(chars) if char.isdigit()]
        at = draw(st.sampled_from(digits))
        edit = draw(st.sampled_from(["replace", "delete", "insert"]))
        digit = str(draw(st.integers(0, 9)))
        if edit == "replace":
            chars[at] = digit
        elif edit == "delete" and len(digits) > 1:
            del chars[at]
        else:
            chars.insert(at, digit)
    separator = draw(st.sampled_from([" ", "-", ".", "/", "\u00a0", ""]))
    text = "".join(chars).replace(" ", separator)
    region = draw(st.sampled_from([None, "", source, draw(st.sampled_from(REGIONS)).lower(),
                                   "Denmark"]))
    return text, region


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(cells(), min_size=1, max_size=40),
       default=st.sampled_from([None, "DK", "FR", "US", "GB", "AR", "BR", "JP", "RU", *REGIONS]),
       use_regions=st.booleans())
def test_fast_path_equals_reference(rows: list[tuple[str, str | None]], default: str | None,
                                    use_regions: bool) -> None:
    raw = pd.Series([text for text, _ in rows], dtype="str")
    regions = pd.Series([region for _, region in rows], dtype="str") if use_regions else None
    expected = [normalize_one(text, default, region if use_regions else None)
                for text, region in rows]
    assert _rows(normalize(raw, default, regions)) == expected


def test_the_reference_does_not_import_the_column_path() -> None:
    # One-way: phone_columns builds on phones, so phones must not import it (no circle).
    import ast
    import inspect

    from batchsms.plan import phone_columns, phones

    def imported(module: object) -> set[str]:
        tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
        return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom | ast.Import)
            for a in n.names}

    assert "batchsms.plan.phones" in imported(phone_columns)
    assert not {"phone_columns", "batchsms.plan.phone_columns"} & imported(phones)


@pytest.mark.parametrize("cells", [
    ["+45 20 12 34 56", "20123456"],  # no escape anywhere: the regex replace is skipped
    ["'+45 20 12 34 56", " '20123456", "it's 20123456", "+45 20 12 34 57"],
    ['="+4520123456"', ' ="20123456" ', '="x', "20123457"],
    ["'+45 20 12 34 56", '="+4520123457"', "'=\"20123458\"", "20123459"],
])
def test_escaped_cells_equal_the_reference_with_and_without_escapes(cells: list[str]) -> None:
    """A column holding no escape's mark skips the replace; the outcome is the reference's."""
    assert all(mark in pattern for (pattern, _), mark in zip(
        TEXT_ESCAPES, phone_columns._ESCAPE_MARKS, strict=True))
    expected = [normalize_one(cell, "DK", None) for cell in cells]
    assert _rows(normalize(pd.Series(cells, dtype="str"), "DK")) == expected

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsms.errors import CampaignError
from batchsms.plan.render import _ENV, compile_template, render_frame


def frame(**columns):
    """A sheet chunk as the contacts reader yields it: text columns, index = sheet row."""
    data = pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in columns.items()})
    return data.set_axis(pd.RangeIndex(2, 2 + len(data), name="row"))


def test_substitution_template_renders_column_wise():
    template = compile_template("Hi << first >>, code << code >>!", "t.txt")
    assert template.parts is not None
    texts, reasons = render_frame(template, frame(first=["Anna", "Zoë"], code=["A1", "B2"]))
    assert texts.tolist() == ["Hi Anna, code A1!", "Hi Zoë, code B2!"]
    assert reasons.isna().all()
    assert texts.index.tolist() == [2, 3]


def test_braces_stay_literal():
    template = compile_template("{{ name }} << name >> {% x %} I <3 you > them", "t.txt")
    texts, _ = render_frame(template, frame(name=["Bo"]))
    assert texts.tolist() == ["{{ name }} Bo {% x %} I <3 you > them"]


def test_empty_cell_skips_the_row_with_a_reason_column_wise():
    template = compile_template("Hi << first >> << last >>", "t.txt")
    texts, reasons = render_frame(template, frame(first=["Anna", None], last=[None, "Berg"]))
    assert texts.isna().all()
    assert reasons.tolist() == ["empty cell in column 'last'", "empty cell in column 'first'"]


def test_empty_cell_skips_the_row_with_a_reason_row_wise():
    template = compile_template("<% if vip == 'yes' %>VIP <% endif %><< first >>", "t.txt")
    assert template.parts is None
    texts, reasons = render_frame(template, frame(first=["Anna", None], vip=["yes", "no"]))
    assert texts.tolist()[0] == "VIP Anna"
    assert pd.isna(texts.tolist()[1])
    assert reasons.tolist()[1] == "empty cell in column 'first'"


def test_optional_columns_with_default_and_is_defined():
    template = compile_template(
        "Hi << nick | default('friend') >><% if store is defined %> at << store >><% endif %>",
        "t.txt")
    texts, reasons = render_frame(template, frame(nick=[None, "Bo"], store=["Main St", None]))
    assert texts.tolist() == ["Hi friend at Main St", "Hi Bo"]
    assert reasons.isna().all()


def test_headers_that_are_not_identifiers_via_contact():
    template = compile_template('Hi << contact["First Name"] >>!', "t.txt")
    assert template.parts is not None
    assert template.columns == {"First Name"}
    texts, _ = render_frame(template, frame(**{"First Name": ["Ann"]}))
    assert texts.tolist() == ["Hi Ann!"]


def test_unknown_variable_is_a_campaign_error_with_a_suggestion():
    template = compile_template("Hi << frist_name >>", "templates/t.txt")
    with pytest.raises(CampaignError) as caught:
        template.check_columns(["phone", "first_name"], "contacts.csv")
    message = str(caught.value)
    assert "templates/t.txt" in message
    assert "'frist_name', but contacts.csv has no such column" in message
    assert "did you mean 'first_name'?" in message


def test_syntax_error_names_the_line():
    with pytest.raises(CampaignError, match=r"t.txt: line 2: template syntax error"):
        compile_template("ok\n<% if x %>never closed", "t.txt")


def test_sandbox_blocks_python_internals():
    template = compile_template("<% if vip is defined %><< name.__class__.__mro__ >><% endif %>ok",
                                "t.txt")
    texts, reasons = render_frame(template, frame(name=["x", "y"], vip=["yes", None]))
    assert pd.isna(texts.iloc[0]) and texts.iloc[1] == "ok"
    assert reasons.iloc[0].startswith("template not allowed at line 1: access to attribute "
                                      "'__class__'")


def test_trailing_newline_of_the_template_file_is_dropped_like_jinja():
    texts, _ = render_frame(compile_template("Hi << a >>\n", "t.txt"), frame(a=["x"]))
    assert texts.tolist() == ["Hi x"]


def test_constant_template():
    texts, _ = render_frame(compile_template("Sale today!", "t.txt"), frame(a=["x", "y"]))
    assert texts.tolist() == ["Sale today!", "Sale today!"]


cells = st.one_of(st.none(), st.text(min_size=1, max_size=12).map(str.strip).filter(bool))
# Literal text next to a variable must not form a delimiter with it ("<" + "<< a >>").
literal = st.text(max_size=10).filter(lambda s: not set(s) & set("<>\r"))


@settings(max_examples=200, deadline=None)
@given(data=st.lists(st.tuples(cells, cells, st.booleans()), min_size=1, max_size=8),
       pieces=st.lists(st.one_of(literal, st.sampled_from(["<< a >>", "<< b >>",
                                                           '<< contact["a"] >>'])),
                       min_size=1, max_size=6))
def test_column_wise_equals_jinja_row_by_row(data, pieces):
    """Only the chosen rows (``todo``) are rendered; the others have neither text nor reason,
    whatever their cells hold (the column path joins them too and masks them after)."""
    source = "".join(pieces)
    template = compile_template(source, "t.txt")
    assert template.parts is not None
    sheet = frame(a=[a for a, _, _ in data], b=[b for _, b, _ in data])
    todo = np.array([chosen for _, _, chosen in data])
    texts, reasons = render_frame(template, sheet, todo if len(data) % 2 else None)
    todo = todo if len(data) % 2 else np.ones(len(data), bool)
    jinja = _ENV.from_string(source)
    for (a, b, _), chosen, text, reason in zip(data, todo, texts, reasons, strict=True):
        needed = {name: value for name, value in (("a", a), ("b", b)) if name in template.columns}
        if not chosen:
            assert pd.isna(text) and pd.isna(reason)
        elif any(v is None for v in needed.values()):
            assert pd.isna(text) and reason.startswith("empty cell")
        else:
            context = {k: v for k, v in (("a", a), ("b", b)) if v is not None}
            assert text == jinja.render({**context, "contact": context})
            assert pd.isna(reason)


def test_the_chosen_rows_of_a_jinja_template_equal_the_column_path():
    """A template with a statement is rendered row by row, the chosen rows only; its texts
    and reasons sit at the same rows as the column path's."""
    sheet = frame(a=["x", None, "ÿ🌸", "z", None], b=["1", "2", None, "4", "5"])
    todo = np.array([True, True, True, False, False])
    column_wise = render_frame(compile_template("<< a >>-<< b >>", "t.txt"), sheet, todo)
    by_row = render_frame(compile_template("<% if true %><< a >>-<< b >><% endif %>", "t.txt"),
                          sheet, todo)
    assert by_row[0].tolist() == column_wise[0].tolist() == ["x-1", pd.NA, pd.NA, pd.NA, pd.NA]
    assert column_wise[1].tolist()[1:3] == ["empty cell in column 'a'", "empty cell in column 'b'"]
    assert by_row[1].isna().tolist() == column_wise[1].isna().tolist()

"""The tasks payload's `sites` map comes from outside (bundle or downlink): any JSON value either parses to
names by site id or is refused with a ValueError naming `sites`, never anything else."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flows.model import SITE_NAME_LIMIT, site_names

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@given(JSON)
def test_any_json_parses_or_is_refused_naming_sites(value):
    try:
        names = site_names(value)
    except ValueError as e:
        assert str(e).startswith("sites")
        return
    assert all(isinstance(k, str) and k and isinstance(v, str) and v.strip() and len(v) <= SITE_NAME_LIMIT
               for k, v in names.items())


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=SITE_NAME_LIMIT)
                       .filter(str.strip), max_size=20))
def test_a_well_formed_map_is_taken_as_it_is(value):
    assert site_names(value) == value

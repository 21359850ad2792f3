"""Booking profile: the shipped data, the strict parser (fuzzed), field-level findings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fpagent.records import profile as P
from fpagent.records.profile_check import check_descriptive, check_fields

GOOD = {
    "RET": "Y", "NAM": "DOE,JOHN Q", "POB": "GA", "DOB": "19800229", "SEX": "M", "RAC": "W",
    "HGT": "511", "WGT": "180", "EYE": "BRO", "HAI": "BLK", "DOA": "20261128",
    "ASL": [["20261127", "THEFT BY TAKING"]], "CRI": "GA0600000", "OCA": "2026-0102",
}


@pytest.fixture(scope="module")
def national():
    return P.load_profile()


def lines(findings):
    return [str(f) for f in findings]


def test_national_profile_loads_with_sources(national):
    assert national.name == P.NATIONAL and national.tot == "CAR"
    mandatory = {f.mnemonic for f in national.record_fields(2) if f.mandatory and not f.structural}
    assert mandatory == {"RET", "NAM", "POB", "DOB", "SEX", "RAC", "HGT", "WGT", "EYE", "HAI", "DOA", "ASL", "CRI"}
    for f in national.fields:  # every field and table names a listed source
        assert f.source in national.sources
    assert all(t.source in national.sources for t in national.codes.values())
    assert not national.by_mnemonic(2, "DPR").confirmed  # written by fpagent, not listed by EBTS for CAR
    assert set(national.codes["race"].values) == {"A", "B", "I", "U", "W"}


def test_a_complete_booking_has_no_findings(national):
    assert lines(check_descriptive(national, GOOD)) == []


@pytest.mark.parametrize("change, expected", [
    ({"SEX": None}, "2.024 SEX: missing (mandatory)"),
    ({"RAC": "Q"}, "2.025 RAC: 'Q' is not in the code table (A, B, I, U, W)"),
    ({"HGT": "5 11"}, "2.027 HGT: has 4 characters, needs 3"),
    ({"HGT": "513"}, "2.027 HGT: is not feet and inches FII (inches 00-11), N and inches, or 000 when unknown"),
    ({"WGT": "020"}, "2.029 WGT: is outside 050-499 pounds (000 when unknown)"),
    ({"DOB": "19800230"}, "2.022 DOB: is not a real date CCYYMMDD (00000000 when unknown)"),
    ({"NAM": "DOE JOHN"}, "2.018 NAM: is not SURNAME,GIVEN NAMES"),
    ({"NAM": "DOE,JOHN 3RD"}, "2.018 NAM: character '3' is not allowed (AS)"),
    ({"OCA": "2026.0102"}, "2.009 OCA: character '.' is not allowed (ANS)"),
    ({"ASL": [["20261127", ""]]}, "2.047 ASL AOL: missing (mandatory)"),
    ({"ASL": [["2026-11-27", "THEFT"]]}, "2.047 ASL DOO: has 10 characters, needs 8"),
    ({"ASL": [["", "X"]] * 41}, "2.047 ASL: 41 occurrences, at most 40"),
    ({"POB": "QQ"}, "2.020 POB: 'QQ' is not in the code table (AA, AB, AD, AE, AF, AG, AH, AI, AJ, AK, AL, AN, ...)"),
    ({"XYZ": "1"}, "2.??? XYZ: is not a Type-2 field of profile ebts-national"),
])
def test_one_clear_finding_per_field(national, change, expected):
    values = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    assert lines(check_descriptive(national, values)) == [expected]


def test_personal_values_are_not_echoed(national):
    found = lines(check_descriptive(national, {**GOOD, "NAM": "SMITHERSON JOHNATHAN", "DOB": "19801399"}))
    assert found and not any("SMITHERSON" in f or "19801399" in f for f in found)


def test_overlay_adds_requires_and_replaces_codes(national):
    state = P.load_profile("example-state")
    assert state.base == P.NATIONAL and state.by_mnemonic(2, "OCA").mandatory
    assert not national.by_mnemonic(2, "OCA").mandatory
    values = {k: v for k, v in GOOD.items() if k != "OCA"} | {"RAC": "H"}
    assert lines(check_descriptive(state, values)) == ["2.009 OCA: missing (mandatory)",
                                                        "2.900 AOC: missing (mandatory)"]
    assert lines(check_descriptive(state, GOOD | {"RAC": "H", "AOC": ["2399"]})) == []


def test_overlay_file_selected_by_absolute_path(tmp_path):
    path = tmp_path / "county.toml"
    path.write_text('[profile]\nname = "county"\nversion = "1"\nextends = "ebts-national"\n'
                    '[[require]]\nnumber = "2.041"\n')
    county = P.load_profile(str(path))
    assert county.by_mnemonic(2, "RES").mandatory and county.label == "county 1 (extends ebts-national)"


@pytest.mark.parametrize("text, fragment", [
    ('[profile]\nname = "x"\nversion = "1"\nextends = "ebts-national"\n[[field]]\nnumber = "2.024"\n'
     'mnemonic = "SX"\nname = "s"\ncondition = "O"\ncharset = "A"\nlength = [1, 1]\n', "already exists"),
    ('[profile]\nname = "x"\nversion = "1"\nextends = "ebts-national"\n[[require]]\nnumber = "2.999"\n',
     "not in ebts-national"),
    ('[profile]\nname = "x"\nversion = "1"\nextends = "nosuch"\n', "no shipped profile"),
    ('[profile]\nname = "x"\nversion = "1"\ntot = "CAR"\nsurprise = 1\n', "unknown key(s) surprise"),
    ('[profile]\nname = "x"\nversion = 1\ntot = "CAR"\n', "version must be a string"),
    ('[profile]\nname = "x"\nversion = "1"\ntot = "CAR"\n[[field]]\nnumber = "2.024"\nmnemonic = "SEX"\n'
     'name = "s"\ncondition = "M"\ncharset = "A"\nlength = [1, 1]\ncodes = "sex"\n', "code table 'sex'"),
    ('[profile]\nname = "x"\nversion = "1"\ntot = "CAR"\n[[field]]\nnumber = "3.001"\n', "must be 1.nnn or 2.nnn"),
    ("not = toml = at all", "not valid TOML"),
])
def test_bad_profiles_say_where(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(P.ProfileError) as err:
        P.load_profile(str(path))
    assert fragment in str(err.value)


def test_oversized_and_unknown_profiles_are_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * P.MAX_PROFILE_BYTES)
    with pytest.raises(P.ProfileError, match="larger than"):
        P.load_profile(str(big))
    with pytest.raises(P.ProfileError, match="no shipped profile"):
        P.load_profile("texas")
    with pytest.raises(P.ProfileError, match="cannot read"):
        P.load_profile(str(tmp_path / "absent.toml"))


# --- fuzz: only ProfileError ever escapes the parser ----------------------------

_scalars = st.one_of(st.text(max_size=12), st.integers(-3, 400), st.booleans(), st.none())
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["name", "version", "tot", "extends", "number", "mnemonic", "condition", "charset", "length",
         "codes", "values", "items", "occurrences", "special", "format", "source", "x"]), inner, max_size=6)),
    max_leaves=25)
_documents = st.fixed_dictionaries({}, optional={
    "profile": st.fixed_dictionaries({}, optional={
        "name": st.sampled_from(["x", "ebts-national", "Bad Name"]), "version": st.sampled_from(["1", 1]),
        "tot": st.sampled_from(["CAR", "car", ""]), "extends": st.sampled_from(["ebts-national", "example-state", "y"]),
        "title": _scalars}),
    "field": st.lists(_values, max_size=3), "require": st.lists(_values, max_size=2),
    "codes": st.dictionaries(st.sampled_from(["sex", "race", "Q"]), _values, max_size=2),
    "sources": st.dictionaries(st.text(max_size=5), _scalars, max_size=2),
    "extra": _values,
})


def _toml(value) -> str:
    """A small TOML writer for the fuzzer's documents (tables and arrays of tables)."""
    import json

    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v if x is not None) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {scalar(x)}" for k, x in v.items() if x is not None) + "}"
        return '""'
    return "\n".join(f"{json.dumps(k)} = {scalar(v)}" for k, v in value.items() if v is not None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_fuzz_structured_profiles_raise_only_profile_error(document):
    try:
        P.parse_profile(_toml(document), "<fuzz>")
    except P.ProfileError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400),
                 st.text(alphabet='[]{}="\n.,0123456789abcdefnrstuvx-_ ', max_size=300)))
def test_fuzz_raw_bytes_raise_only_profile_error(raw):
    try:
        P.parse_profile(raw, "<fuzz>")
    except P.ProfileError:
        pass


def test_check_fields_on_type1(national):
    good = {"LEN": 1, "VER": "0502", "CNT": [["1", "1"]], "TOT": "CAR", "DAT": "20261128", "DAI": "GA0000000",
            "ORI": "GA0600000", "TCN": "GA0600000-20261128-00000001-J", "NSR": "00.00", "NTR": "00.00",
            "DOM": "NORAM", "GMT": "20261128063015Z"}
    assert lines(check_fields(national, 1, good)) == []
    bad = good | {"TOT": "CNA", "GMT": "2026112806301Z", "NSR": "0.00"}
    assert lines(check_fields(national, 1, bad)) == [
        "1.004 TOT: 'CNA' is not in the code table (CAR)",
        "1.011 NSR: has 4 characters, needs 5",
        "1.014 GMT: has 14 characters, needs 15",
    ]

"""JMS booking record -> Type-2 values: the documented schema and the mapping agree."""

from __future__ import annotations

import copy
import json
import pathlib

import jsonschema
import pytest

from fpagent.records import booking_record as B
from fpagent.records.profile import load_profile
from fpagent.records.profile_check import check_descriptive

SCHEMA = json.loads((pathlib.Path(__file__).parent.parent / "docs" / "booking-record.schema.json").read_text())

RECORD = {
    "schema": "fpagent-booking-record/1",
    "booking_number": "2026-0102",
    "person": {
        "last_name": "Doe", "first_name": "John", "middle_name": "Q",
        "aliases": [{"last_name": "Roe", "first_name": "Jack"}],
        "date_of_birth": "1980-02-29", "sex": "m", "race": "W", "height_in": 71, "weight_lb": 180,
        "eye_color": "BRO", "hair_color": "BLK", "place_of_birth": "GA", "ids": {"ssn": "123-45-6789"},
    },
    "arrest": {
        "date": "2026-11-28", "retain": True, "controlling_agency": "GA0600000",
        "charges": [{"literal": "Theft by taking", "offense_date": "2026-11-27", "code": "2399",
                     "statute": "OCGA 16-8-2"},
                    {"literal": "Obstruction"}],
    },
    "officer": {"name": "Sgt. A. Smith", "badge": "417"},
}


def test_example_record_matches_the_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(RECORD, SCHEMA)


def test_record_maps_to_type2_values_the_national_profile_accepts():
    values = B.to_type2(RECORD)
    assert values == {
        "OCA": "2026-0102", "NAM": "DOE,JOHN Q", "AKA": ["ROE,JACK"], "DOB": "19800229", "SEX": "M",
        "RAC": "W", "EYE": "BRO", "HAI": "BLK", "POB": "GA", "HGT": "511", "WGT": "180", "SOC": "123456789",
        "DOA": "20261128", "RET": "Y", "CRI": "GA0600000",
        "ASL": [["20261127", "THEFT BY TAKING"], ["", "OBSTRUCTION"]], "ATN": "SGT A SMITH 417",
    }
    assert check_descriptive(load_profile(), values) == []


def test_offense_codes_go_to_the_overlay_field():
    values = B.to_type2(RECORD, offense_code_field="AOC", statute_field="AST")
    assert values["AOC"] == ["2399", ""] and values["AST"] == ["OCGA 16-8-2", ""]
    found = [str(f) for f in check_descriptive(load_profile("example-state"), values)]
    assert found == ["2.900 AOC #2: is empty", "2.901 AST #2: is empty"]  # one per charge, in order


def test_missing_data_stays_missing_so_the_profile_names_it():
    record = copy.deepcopy(RECORD)
    del record["person"]["sex"], record["arrest"]["retain"]
    found = [str(f) for f in check_descriptive(load_profile(), B.to_type2(record))]
    assert found == ["2.005 RET: missing (mandatory)", "2.024 SEX: missing (mandatory)"]


@pytest.mark.parametrize("change, fragment", [
    (lambda r: r.pop("booking_number"), "record.booking_number is missing"),
    (lambda r: r.update(schema="other/9"), "record.schema must be"),
    (lambda r: r["person"].update(shoe_size=11), "person: unknown key(s) shoe_size"),
    (lambda r: r["person"].update(height_in="5'11"), "person.height_in must be a whole number"),
    (lambda r: r["person"].update(date_of_birth="1980-02-30"), "person.date_of_birth is not a real date"),
    (lambda r: r["arrest"].update(charges=[]), "arrest.charges must hold 1-40 charges"),
    (lambda r: r["arrest"]["charges"][0].pop("literal"), "arrest.charges[0].literal is missing"),
    (lambda r: r["person"].update(last_name="Doe\x1e"), "control characters"),
])
def test_bad_records_name_the_key_and_the_schema_agrees(change, fragment):
    record = copy.deepcopy(RECORD)
    change(record)
    with pytest.raises(B.BookingRecordError) as err:
        B.to_type2(record)
    assert fragment in str(err.value)
    if "real date" not in fragment and "control" not in fragment:  # JSON Schema checks shape, not calendars
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(record, SCHEMA)

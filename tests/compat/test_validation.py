"""catzilla.validation: BaseModel/Field as Catzilla 0.2.3 documents them, over a real server."""
from __future__ import annotations

import msgspec
import pytest

from catzilla import BaseModel, Field, ValidationError
from compat_support import compat_client

GOOD = {"id": 7, "username": "ada_l", "age": 36, "address": {"street": "1 Loop Road", "zipcode": "12345"}}


@pytest.fixture(scope="module")
def client():
    with compat_client("validation_app:app", "--threads", "4") as client:
        yield client


def test_a_valid_body_becomes_the_model_with_its_defaults(client):
    r = client.post("/members", json=GOOD)
    assert r.status_code == 201
    assert r.json() == {"type": "Member", "member": {
        "id": 7, "username": "ada_l", "age": 36, "active": True, "bio": None, "tags": [],
        "address": {"street": "1 Loop Road", "zipcode": "12345"}}}


@pytest.mark.parametrize("change, loc", [
    ({"id": 0}, ["body", "id"]),                      # ge
    ({"username": "ab"}, ["body", "username"]),        # min_length
    ({"username": "Bad Name"}, ["body", "username"]),  # regex
    ({"tags": ["a", "b", "c", "d"]}, ["body", "tags"]),  # max_items
    ({"bio": "x" * 21}, ["body", "bio"]),              # Optional with max_length
    ({"age": "old"}, ["body", "age"]),                 # type
])
def test_each_constraint_is_answered_422_with_the_field(client, change, loc):
    r = client.post("/members", json={**GOOD, **change})
    assert r.status_code == 422
    assert loc in [error["loc"] for error in r.json()["detail"]]


def test_nested_model_errors_and_missing_fields(client):
    r = client.post("/members", json={**GOOD, "address": {"street": "1 Loop Road", "zipcode": "abc"}})
    assert r.status_code == 422
    assert "zipcode" in str(r.json()["detail"])
    r = client.post("/members", json={"username": "ada_l"})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} >= {("body", "id"), ("body", "age")}


def test_post_init_rule_fails_validation(client):
    r = client.post("/members", json={**GOOD, "age": 15, "bio": "hi"})
    assert r.status_code == 422
    assert "under 18" in str(r.json()["detail"])


def test_model_body_with_a_path_parameter_on_an_async_handler(client):
    r = client.put("/members/5", json=GOOD)
    assert r.json() == {"member_id": 5, "username": "ada_l", "city": None}
    assert client.put("/members/0", json=GOOD).status_code == 422


def test_query_model(client):
    r = client.get("/members?role=admin&min_age=21&active=yes&tags=a&tags=b")
    assert r.json() == {"filters": {"role": "admin", "min_age": 21, "active": True, "tags": ["a", "b"]}}
    assert client.get("/members").json() == {"filters": {"role": None, "min_age": 0, "active": False, "tags": []}}
    r = client.get("/members?role=root&min_age=-1")
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("query", "role"), ("query", "min_age")}


def test_constructing_a_model_validates(client):
    assert "id" in client.get("/constructed").json()["error"]


def test_model_api_in_process():
    class Item(BaseModel):
        name: str = Field(min_length=1)
        price: float = Field(gt=0)
        labels: list[str] = ["new"]

    item = Item(name="pen", price="1.5")  # lax, as pydantic is
    assert item.price == 1.5 and item.labels == ["new"]
    assert Item(name="a", price=1).labels is not item.labels  # a fresh default each time
    assert item.model_dump() == {"name": "pen", "price": 1.5, "labels": ["new"]}
    assert Item.model_validate_json(b'{"name": "x", "price": 2}').price == 2
    with pytest.raises(ValidationError):
        Item.model_validate({"name": "", "price": 1})
    assert issubclass(ValidationError, ValueError) and issubclass(Item, msgspec.Struct)
    assert set(Item.model_fields) == {"name", "price"}

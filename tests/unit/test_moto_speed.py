"""What makes moto quick without changing what it does. A deploy (every test stack deploys the
template): the template read by libyaml, a JSON template body read as JSON, a state machine
definition that passed moto's check not parsed again. DynamoDB's responses: attribute values
written directly, as moto's own walk writes them."""
import json
import uuid
from contextlib import contextmanager

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import moto_shims
from infra.stack import TEMPLATE_PATH, load_template, render_template


def test_the_template_reads_the_same_with_the_fast_loader():
    assert load_template() == yaml.safe_load(TEMPLATE_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_json_template_body_is_read_as_json_into_what_yaml_reads(monkeypatch, stage):
    # GIVEN the rendered template and moto's own (YAML) reading of it
    from moto.cloudformation import models
    from moto.cloudformation.utils import yaml_tag_constructor

    body = render_template("crowd", stage)
    yaml.add_multi_constructor("", yaml_tag_constructor)
    by_yaml = yaml.load(body, Loader=yaml.Loader)
    moto_shims.install_all()
    # WHEN moto reads it with YAML out of reach THEN it reads the same dict
    monkeypatch.setattr(models.yaml, "load", _no_yaml)
    assert models.Stack.parse_template(body) == by_yaml


def test_a_yaml_template_body_is_still_read_as_yaml():
    moto_shims.install_all()
    from moto.cloudformation import models

    body = "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: q\n"
    assert models.Stack.parse_template(body) == {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}}}}


def _no_yaml(*args, **kwargs):
    raise AssertionError("a JSON body went through PyYAML")


def _counting_parser(monkeypatch):
    """Count the ASL parses moto's definition check makes."""
    from moto.stepfunctions.parser import models

    parses = []
    parse = models.AmazonStateLanguageParser.parse

    def counted(definition):
        parses.append(definition)
        return parse(definition)

    monkeypatch.setattr(models.AmazonStateLanguageParser, "parse", staticmethod(counted))
    return models.StepFunctionsParserBackend, parses


def test_a_definition_that_passed_the_check_is_not_parsed_again(monkeypatch):
    # GIVEN a valid definition (unique to this test)
    moto_shims.install_all()
    backend, parses = _counting_parser(monkeypatch)
    definition = json.dumps({"Comment": str(uuid.uuid4()), "StartAt": "Done",
                             "States": {"Done": {"Type": "Pass", "End": True}}})
    # WHEN it is checked on three deploys THEN it is parsed once
    for _ in range(3):
        backend._validate_definition(definition=definition)
    assert parses == [definition]


def test_a_definition_that_failed_the_check_fails_it_every_time(monkeypatch):
    from moto.stepfunctions.parser.api import InvalidDefinition

    moto_shims.install_all()
    backend, parses = _counting_parser(monkeypatch)
    broken = json.dumps({"Comment": str(uuid.uuid4()), "StartAt": "Nowhere", "States": {}})
    for _ in range(2):
        with pytest.raises(InvalidDefinition):
            backend._validate_definition(definition=broken)
    assert parses == [broken, broken]



# Every name moto's picker may read an attribute value's member under, with a value of the
# member's kind (or None); "Other" is read by nobody.
_SCALARS = {
    "S": st.text(max_size=5), "N": st.one_of(st.integers(), st.text("0123456789.-", max_size=4)),
    "B": st.one_of(st.binary(max_size=5), st.text(max_size=5)), "BOOL": st.booleans(),
    "NULL": st.booleans(), "SS": st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=3),
    "NS": st.lists(st.one_of(st.integers(), st.text("0123456789", max_size=3)), max_size=3),
    "BS": st.lists(st.binary(max_size=3), max_size=3), "Other": st.text(max_size=3),
}
_ALIASES = {"s": "S", "n": "N", "b": "B", "bool": "BOOL", "null": "NULL", "ss": "SS",
            "StringSetAttributeValue": "SS", "string_set_attribute_value": "SS",
            "NumberSetAttributeValue": "NS", "BinarySetAttributeValue": "BS", "bs": "BS"}


def _attribute_values():
    """Attribute values as moto's DynamoDB model hands them to its serialiser, odd ones too."""
    def member(name):
        return st.one_of(st.none(), _SCALARS[_ALIASES.get(name, name)])

    plain = st.one_of(*(st.fixed_dictionaries({name: _SCALARS[name]}) for name in _SCALARS))
    odd = st.dictionaries(st.sampled_from([*_SCALARS, *_ALIASES]), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({name: member(name) for name in keys}))

    def nested(children):
        items = st.one_of(children, st.none(), st.text(max_size=2))
        return st.one_of(
            st.fixed_dictionaries({"M": st.dictionaries(st.text(max_size=3), children, max_size=3)}),
            st.fixed_dictionaries({"L": st.lists(items, max_size=3)}),
            st.fixed_dictionaries({"ListAttributeValue": st.lists(items, max_size=2),
                                   "L": st.lists(items, max_size=2)}),
            st.fixed_dictionaries({"m": st.dictionaries(st.text(max_size=2), children,
                                                        max_size=2)}))

    return st.recursive(st.one_of(plain, odd), nested, max_leaves=12)


def _dynamodb_body(operation, result):
    """The JSON body moto writes for a DynamoDB operation's result."""
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    serializer = JSONSerializer(
        operation_model=get_service_model("dynamodb").operation_model(operation),
        value_picker=XFormedAttributePicker(response_transformers=None))
    return serializer.serialize(result)["body"]


@contextmanager
def _moto_alone():
    """moto's own serialiser, without the direct writing of attribute values."""
    from moto.core.serialize import JSONSerializer

    shim = JSONSerializer.__dict__["_serialize_type_structure"]
    del JSONSerializer._serialize_type_structure
    try:
        yield
    finally:
        JSONSerializer._serialize_type_structure = shim


@settings(max_examples=300, deadline=None)
@given(item=st.dictionaries(st.text(max_size=4), _attribute_values(), max_size=4),
       items=st.lists(st.dictionaries(st.text(max_size=3), _attribute_values(), max_size=3),
                      max_size=3))
def test_attribute_values_are_written_as_moto_writes_them(item, items):
    moto_shims.install_all()
    fast = (_dynamodb_body("GetItem", {"Item": item}),
            _dynamodb_body("Query", {"Items": items, "Count": len(items)}))
    with _moto_alone():
        slow = (_dynamodb_body("GetItem", {"Item": item}),
                _dynamodb_body("Query", {"Items": items, "Count": len(items)}))
    assert fast == slow


def test_an_items_attribute_values_skip_moto_s_member_by_member_walk(monkeypatch):
    # GIVEN an item of 40 attributes and a count of every lookup moto's picker makes
    from moto.core import serialize

    moto_shims.install_all()
    lookups = []
    picker = serialize.XFormedAttributePicker.__call__

    def counted(self, context):
        lookups.append(context.key)
        return picker(self, context)

    monkeypatch.setattr(serialize.XFormedAttributePicker, "__call__", counted)
    item = {f"a{n}": {"S": "x"} if n % 2 else {"M": {"k": {"N": "1"}}} for n in range(40)}
    # WHEN it is written THEN only the response's own members are looked up
    body = _dynamodb_body("GetItem", {"Item": item})
    assert json.loads(body)["Item"] == item
    assert len(lookups) < 10, len(lookups)

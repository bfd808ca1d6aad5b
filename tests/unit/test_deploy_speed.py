"""What makes a deploy on moto quick (every test stack deploys the template) without changing
what gets deployed: the template read by libyaml, a JSON template body read as JSON, a state
machine definition that passed moto's check not parsed again."""
import json
import uuid

import pytest
import yaml

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


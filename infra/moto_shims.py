"""Patches to moto 5.2.5 that close the gaps between it and AWS for this project.

Test and local-stack only: the app never imports this module. Every patch is on a
moto class (process-wide), so it applies to `mock_aws` and to an in-process moto
server alike. Each docstring names the gap it closes.
"""

from __future__ import annotations

import bisect
import copy
import functools
import io
import json
import threading
import traceback
import weakref
import zipfile
from enum import Enum
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from infra.local_aws import lambda_context
from infra.stack import STAGE_FUNCTIONS

Handler = Callable[[dict[str, Any], Any], Any]

_DYNAMODB_LOCK = threading.RLock()
_LOCKED_MARK = "__crowd_dynamodb_locked__"
_DYNAMODB_BACKEND_METHODS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "get_item",
    "query",
    "scan",
    "transact_get_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)
# moto's batch/transact reads and batch writes are implemented in the response
# handler as one backend call per item (the backend methods of those names are
# empty stubs), so the handler methods are locked too to keep each request atomic.
_DYNAMODB_HANDLER_METHODS = ("batch_write_item", "batch_get_item", "transact_get_items", "transact_write_items",
                             # These serialise the live item after the backend call returns; a
                             # concurrent write to it then fails with "dictionary changed size".
                             "update_item", "put_item", "delete_item", "get_item", "query", "scan")

_SHIM_MARK = "__crowd_moto_shim__"


class Undo:
    """Callable that reverts a patch; also usable as a context manager."""

    def __init__(self, revert: Callable[[], None]) -> None:
        """Wrap the function that reverts the patch."""
        self._revert: Callable[[], None] | None = revert

    def __call__(self) -> None:
        """Revert the patch (only the first call does anything)."""
        if self._revert is not None:
            revert, self._revert = self._revert, None
            revert()

    def __enter__(self) -> Undo:
        """Keep the patch for the duration of the with-block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Revert the patch when the with-block ends."""
        self()


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """method run under the process-wide DynamoDB lock."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return method(*args, **kwargs)

    setattr(wrapper, _LOCKED_MARK, True)
    return wrapper


def install_dynamodb_lock() -> None:
    """Serialise moto's DynamoDB reads and writes behind one process-wide RLock (idempotent).

    Gap: moto's DynamoDB backend is not thread-safe. Concurrent conditional updates
    can both win, and a cancelled TransactWriteItems restores deep copies of every
    table it touched, wiping other threads' writes. With the lock moto is stricter
    than DynamoDB (no TransactionConflict), so test retries on cancellation separately.
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    for cls, names in ((DynamoDBBackend, _DYNAMODB_BACKEND_METHODS), (DynamoHandler, _DYNAMODB_HANDLER_METHODS)):
        for name in names:
            method = getattr(cls, name, None)
            if method is None or getattr(method, _LOCKED_MARK, False):
                continue
            setattr(cls, name, _locked(method))


def _apply_after_cloudformation_create(
    model: type, apply: Callable[[Any, Mapping[str, Any], str, str], None]
) -> None:
    """Wrap model.create_from_cloudformation_json so apply(resource, properties, account, region) runs after it (idempotent)."""
    current = model.__dict__["create_from_cloudformation_json"]
    if getattr(current.__func__, _SHIM_MARK, False):
        return
    original = current.__func__

    def create_from_cloudformation_json(
        cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        resource = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        apply(resource, cloudformation_json.get("Properties", {}), account_id, region_name)
        return resource

    setattr(create_from_cloudformation_json, _SHIM_MARK, True)
    setattr(model, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))


def install_cloudformation_table_shim() -> None:
    """Make CloudFormation apply a table's TimeToLiveSpecification and PointInTimeRecoverySpecification (idempotent).

    Gap: moto 5.2.5's AWS::DynamoDB::Table ignores both properties, so TTL and
    PITR would be off on a stack-created table while the template says on.
    """
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    def apply(table: Any, properties: Mapping[str, Any], account_id: str, region_name: str) -> None:
        backend = dynamodb_backends[account_id][region_name]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            backend.update_time_to_live(
                table.name, {"AttributeName": ttl["AttributeName"], "Enabled": _truthy(ttl.get("Enabled", False))}
            )
        pitr = properties.get("PointInTimeRecoverySpecification")
        if pitr and _truthy(pitr.get("PointInTimeRecoveryEnabled", False)):
            backend.update_continuous_backups(table.name, {"PointInTimeRecoveryEnabled": True})

    _apply_after_cloudformation_create(Table, apply)


def install_cloudformation_bucket_shim() -> None:
    """Make CloudFormation apply a bucket's PublicAccessBlockConfiguration and OwnershipControls (idempotent).

    Gap: moto 5.2.5's AWS::S3::Bucket applies only BucketEncryption and Tags, so a
    stack-created bucket would report no public access block.
    """
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

    def apply(bucket: Any, properties: Mapping[str, Any], account_id: str, region_name: str) -> None:
        backend = s3_backends[account_id][get_partition(region_name)]
        if properties.get("PublicAccessBlockConfiguration"):
            backend.put_public_access_block(bucket.name, properties["PublicAccessBlockConfiguration"])
        rules = (properties.get("OwnershipControls") or {}).get("Rules") or []
        if rules:
            backend.put_bucket_ownership_controls(bucket.name, ownership=rules[0]["ObjectOwnership"])

    _apply_after_cloudformation_create(FakeBucket, apply)


def install_cloudformation_kms_key_tags_shim() -> None:
    """Let CloudFormation create a KMS key with Tags (idempotent).

    Gap: moto 5.2.5's AWS::KMS::Key passes the template's `{Key, Value}` tags to a tagger
    that reads KMS's API spelling `{TagKey, TagValue}`, and fails with KeyError 'TagKey'.
    """
    from moto.kms.models import Key

    original = Key.__dict__["create_from_cloudformation_json"].__func__
    if getattr(original, "_tags_shimmed", False):
        return

    def create(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
               region_name: str, **kwargs: Any) -> Any:
        properties = dict(cloudformation_json.get("Properties", {}))
        properties["Tags"] = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} if "Key" in tag
                              else tag for tag in properties.get("Tags", [])]
        return original(cls, resource_name, {**cloudformation_json, "Properties": properties},
                        account_id, region_name, **kwargs)

    create._tags_shimmed = True  # type: ignore[attr-defined]
    Key.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]


def _state_machine_definition(properties: Mapping[str, Any]) -> str:
    """DefinitionString, or the object Definition serialised, with DefinitionSubstitutions applied."""
    definition = properties.get("DefinitionString")
    if definition is None and "Definition" in properties:
        definition = json.dumps(properties["Definition"])
    definition = definition or ""
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    return definition


def install_cloudformation_state_machine_shim() -> None:
    """Make CloudFormation create state machines where the Step Functions API looks for them (idempotent).

    Gaps: with `{"stepfunctions": {"execute_state_machine": True}}` the API is served
    by a separate backend (`stepfunctions_parser_backends`) while moto 5.2.5's
    AWS::StepFunctions::StateMachine writes to the plain one, so a stack-created
    state machine "does not exist" for describe/start_execution. moto also leaves
    an object `Definition` empty, ignores DefinitionSubstitutions and
    StateMachineType. This creates, updates and deletes through the backend the API
    uses (which also parses the ASL, so a broken definition fails the deploy).
    """
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.responses import get_backend
    from moto.stepfunctions.utils import cfn_to_api_tags

    if getattr(StateMachine.__dict__["create_from_cloudformation_json"].__func__, _SHIM_MARK, False):
        return

    def create_from_cloudformation_json(
        cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        return get_backend(account_id, region_name).create_state_machine(
            properties.get("StateMachineName", resource_name),
            _state_machine_definition(properties),
            properties.get("RoleArn", ""),
            tags=cfn_to_api_tags(properties.get("Tags", [])),
            sm_type=properties.get("StateMachineType", "STANDARD"),
        )

    def delete_from_cloudformation_json(
        cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        get_backend(account_id, region_name).delete_state_machine(resource_name)

    def update_from_cloudformation_json(
        cls: type,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = cloudformation_json.get("Properties", {})
        backend = get_backend(account_id, region_name)
        name = properties.get("StateMachineName", original_resource.name)
        if name != original_resource.name:
            replacement = create_from_cloudformation_json(cls, name, cloudformation_json, account_id, region_name)
            backend.delete_state_machine(original_resource.arn)
            return replacement
        state_machine = backend.update_state_machine(
            original_resource.arn,
            definition=_state_machine_definition(properties) or None,
            role_arn=properties.get("RoleArn"),
        )
        backend.tagger.tag_resource(state_machine.arn, cfn_to_api_tags(properties.get("Tags", [])))
        return state_machine

    for fn in (create_from_cloudformation_json, delete_from_cloudformation_json, update_from_cloudformation_json):
        setattr(fn, _SHIM_MARK, True)
        setattr(StateMachine, fn.__name__, classmethod(fn))


def install_step_functions_execution_name_shim() -> None:
    """Give executions started without a name a fresh UUID name, as AWS does (idempotent).

    Gap: moto 5.2.5's executing backend (`execute_state_machine: True`) names every
    unnamed execution "None", so the second unnamed start_execution on a state
    machine fails with ExecutionAlreadyExists.
    """
    import uuid

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    current = StepFunctionsParserBackend.__dict__["start_execution"]
    if getattr(current, _SHIM_MARK, False):
        return

    @functools.wraps(current)
    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return current(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    setattr(start_execution, _SHIM_MARK, True)
    setattr(StepFunctionsParserBackend, "start_execution", start_execution)


def _truthy(value: Any) -> bool:
    """CloudFormation booleans may arrive as strings after intrinsic resolution."""
    return value is True or str(value).lower() == "true"


_ROLLBACK_MARK = "__crowd_item_rollback__"


class _CopyKeepingTables:
    """Stands in for the `copy` module inside moto's DynamoDB models: tables are not copied."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _transaction_keys(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    keys = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        if "Key" in op:
            keys.append((table.name, op["Key"]))
        elif "Item" in op and table.hash_key_attr in op["Item"]:
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr and table.range_key_attr in op["Item"]:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
            keys.append((table.name, key))
    return keys


def install_item_level_transaction_rollback() -> None:
    """Make TransactWriteItems snapshot only the items it touches (idempotent).

    Gap: before every transaction moto deep-copies each table the transaction names, to
    roll back on cancellation: O(table size) per transaction (about 260 ms at 5k items),
    which dominates the local stack's CPU. Under the process-wide DynamoDB lock,
    restoring just the touched items on failure leaves the same state.
    """
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    current = DynamoDBBackend.__dict__["transact_write_items"]
    if getattr(current, _ROLLBACK_MARK, False):
        return
    models.copy = _CopyKeepingTables  # type: ignore[attr-defined]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        with _DYNAMODB_LOCK:
            snapshots = []
            for table_name, key in _transaction_keys(self, transact_items):
                try:
                    item = self.get_item(table_name, key)
                except Exception:  # an invalid key: moto's own call reports it
                    continue
                snapshots.append((table_name, key, copy.deepcopy(item)))
            try:
                return current(self, transact_items)
            except Exception:
                for table_name, key, item in reversed(snapshots):
                    if item is None:
                        self.delete_item(table_name, key)
                    else:
                        self.put_item(table_name, item.to_json()["Attributes"])
                raise

    setattr(transact_write_items, _ROLLBACK_MARK, True)
    setattr(transact_write_items, _LOCKED_MARK, True)
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


_RETENTION_MARK = "__crowd_cheap_retention__"


def install_cheap_sqs_retention_check() -> None:
    """Make SQS's per-message retention check read one attribute (idempotent).

    Gap (speed only): on every ReceiveMessage moto checks each queued message's
    retention by building the queue's whole attribute map, which counts every message:
    O(n^2) in the queue's depth, and most of the local stack's CPU under a backlog.
    """
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend.is_message_valid_based_on_retention_period, _RETENTION_MARK, False):
        return

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    setattr(is_message_valid_based_on_retention_period, _RETENTION_MARK, True)
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


_REST_API_MARK = "__crowd_rest_api_import__"


def _as_openapi3(api_doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(api_doc)
    if "swagger" in doc:
        doc.pop("swagger")
        doc["openapi"] = "3.0.1"
    doc["info"] = {"description": "", **doc.get("info", {})}
    return doc


def install_rest_api_import_shim() -> None:
    """Let `chalice deploy` import and update its REST API on moto (idempotent).

    Gap: moto 5.2.5 reads info.description, which Chalice's Swagger document lacks, and
    accepts only OpenAPI 3 while Chalice sends Swagger 2.0; the paths and integrations it
    reads are the same in both, so the document is relabelled.
    """
    from moto.apigateway.models import APIGatewayBackend

    if getattr(APIGatewayBackend.import_rest_api, _REST_API_MARK, False):
        return
    original_import = APIGatewayBackend.import_rest_api
    original_put = APIGatewayBackend.put_rest_api

    def import_rest_api(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
        return original_import(self, _as_openapi3(api_doc), fail_on_warnings)

    def put_rest_api(self: Any, function_id: str, api_doc: dict[str, Any], fail_on_warnings: bool,
                     mode: str = "merge") -> Any:
        return original_put(self, function_id, _as_openapi3(api_doc), fail_on_warnings, mode)

    setattr(import_rest_api, _REST_API_MARK, True)
    APIGatewayBackend.import_rest_api = import_rest_api  # type: ignore[method-assign]
    APIGatewayBackend.put_rest_api = put_rest_api  # type: ignore[method-assign]


_JSON_TEMPLATE_MARK = "__crowd_json_template__"


def install_json_template_reading() -> None:
    """Read a JSON template body as JSON (idempotent).

    Gap (speed only): moto reads every template body with PyYAML's pure-Python loader
    first (JSON being YAML), a quarter to half a second for this project's rendered
    template on every deploy; `json.loads` gives the same dict at once. A body that is
    not JSON is read by moto as before.
    """
    from moto.cloudformation.models import Stack

    current = Stack.__dict__["parse_template"].__func__
    if getattr(current, _JSON_TEMPLATE_MARK, False):
        return

    def parse_template(template: str) -> dict[str, Any]:
        try:
            parsed = json.loads(template)
        except ValueError:
            return current(template)
        return parsed if isinstance(parsed, dict) else current(template)

    setattr(parse_template, _JSON_TEMPLATE_MARK, True)
    Stack.parse_template = staticmethod(parse_template)  # type: ignore[method-assign]


_CHECKED_DEFINITION_MARK = "__crowd_checked_definitions__"
_CHECKED_DEFINITIONS_KEPT = 32


def install_checked_definition_memory() -> None:
    """Parse a state machine definition that passed the check before only once (idempotent).

    Gap (speed only): on every CreateStateMachine moto checks the definition with its
    ANTLR parser, about a third of a second for the aggregation machine, though the same
    text was checked on the previous deploy. The text of the last few definitions that
    passed is remembered and passes again; one that failed is checked (and refused)
    every time. Executions still parse their definition as before.
    """
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    current = StepFunctionsParserBackend.__dict__["_validate_definition"].__func__
    if getattr(current, _CHECKED_DEFINITION_MARK, False):
        return
    passed: dict[str, None] = {}
    lock = threading.Lock()

    def _validate_definition(definition: str) -> None:
        with lock:
            if definition in passed:
                return
        current(definition=definition)
        with lock:
            passed[definition] = None
            while len(passed) > _CHECKED_DEFINITIONS_KEPT:
                del passed[next(iter(passed))]

    setattr(_validate_definition, _CHECKED_DEFINITION_MARK, True)
    StepFunctionsParserBackend._validate_definition = staticmethod(_validate_definition)  # type: ignore[method-assign]


_ATTRIBUTE_VALUE_MARK = "__crowd_attribute_values__"
_ATTRIBUTE_VALUE_SERVICES = ("dynamodb", "dynamodbstreams")


def install_fast_attribute_values() -> None:
    """Write DynamoDB attribute values into moto's JSON responses directly (idempotent).

    Gap (speed only): moto 5.2.5 serialises every response through the service model,
    and for each attribute value of each item it looks for every one of the ten type
    members (S, N, B, SS, ..., BOOL) under up to four names through a chain of alias
    objects: about a third of moto's CPU in this project's flows, which read and write
    items with many attributes. This writes a plain attribute value (a dict) as that
    walk does, looking up the same names in the same order, and leaves everything
    else (another shape, a value that is not a dict, a response transformer) to moto.
    """
    from moto.core.serialize import AttributePickerContext, JSONSerializer, XFormedAttributePicker

    current = JSONSerializer.__dict__.get("_serialize_type_structure")
    if current is not None and getattr(current, _ATTRIBUTE_VALUE_MARK, False):
        return
    generic = JSONSerializer._serialize_type_structure
    # (service, member) -> the keys moto's picker tries for that member of a dict, in order.
    names: dict[tuple[str, str], tuple[str, ...]] = {}

    def member_names(serializer: Any, shape: Any, key: str, member: Any) -> tuple[str, ...]:
        cache_key = (str(serializer.service_model.service_name), key)
        found = names.get(cache_key)
        if found is None:
            member.parent = shape
            context = AttributePickerContext(obj={}, key=key, shape=member,
                                             operation_model=serializer.operation_model,
                                             service_model=serializer.service_model)
            found = names[cache_key] = tuple(serializer._value_picker.get_possible_keys(context))
        return found

    def as_string(value: Any) -> Any:
        """What moto's string serialiser writes for value."""
        if isinstance(value, Enum):
            value = value.value
        return str(value) if value not in [None, {}, []] else value

    def kind_of_items(member: Any) -> str | None:
        """A list member's item kind (None for any other member)."""
        return member.member.type_name if member.type_name == "list" else None

    def attribute_value(self: Any, value: dict[str, Any], shape: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, member in shape.members.items():
            for name in member_names(self, shape, key, member):
                if name in value:
                    member_value = value[name]
                    break
            else:
                continue
            if member_value is None:
                continue
            if member.serialization or (kind_of_items(member) and member.member.serialization):
                raise _NotPlain
            kind = member.type_name
            if kind == "string":
                out[key] = as_string(member_value)
            elif kind == "blob":
                out[key] = self._base64(member_value)
            elif kind == "boolean":
                out[key] = member_value
            elif kind == "map":
                entries: dict[str, Any] = {}
                out[key] = entries
                for entry_key, entry in member_value.items():
                    self._serialize_type_structure(entries, entry, member.value, entry_key)
            elif kind_of_items(member) == "structure":
                items = []
                for item in member_value:
                    wrapper: dict[str, Any] = {}
                    self._serialize_type_structure(wrapper, item, member.member, member.member.name)
                    items.append(wrapper.get(member.member.name, item))
                out[key] = items
            elif kind_of_items(member) == "string":
                out[key] = [as_string(item) for item in member_value]
            elif kind_of_items(member) == "blob":
                out[key] = [self._base64(item) for item in member_value]
            else:
                raise _NotPlain
        return out

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        picker = self._value_picker
        if (key and shape.name == "AttributeValue" and type(value) is dict
                and type(self) is JSONSerializer and type(picker) is XFormedAttributePicker
                and not picker.response_transformers
                and self.service_model.service_name in _ATTRIBUTE_VALUE_SERVICES
                and not shape.serialization):
            try:
                serialized[key] = attribute_value(self, value, shape)
                return
            except _NotPlain:
                pass
        generic(self, serialized, value, shape, key)

    setattr(_serialize_type_structure, _ATTRIBUTE_VALUE_MARK, True)
    JSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]


_KEYED_QUERY_MARK = "__crowd_keyed_query__"
_KEY_TYPES = ("S", "N", "B")
# Items a narrowed query hands moto beyond `limit`: the one that makes moto report a
# LastEvaluatedKey, and up to two at the start key that moto's own paging skips.
_WINDOW_SLACK = 3
# DynamoDB's largest item: a window whose items could bring a page near moto's 1 MB page
# limit is widened to the whole key, so the page ends exactly where moto would end it.
_MAX_ITEM_BYTES = 400 * 1024


class _PageNotCopied:
    """Stands in for the `copy` module inside moto's query: the page is a new list of the same
    items, which the projection that follows turns into new items."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return list(value) if isinstance(value, list) else copy.deepcopy(value, memo)


class _Unkeyable(Exception):
    """A key attribute whose value is not a string, number or binary."""


def _native(value: Any) -> Any:
    """The value moto compares a key attribute by (its cast value), for S, N and B only."""
    if value.type not in _KEY_TYPES:
        raise _Unkeyable
    return value.cast_value


class _KeyedItems:
    """One key of one table (its primary key or a secondary index): for each hash value, the
    items carrying that key, sorted in the order moto sorts a query's results.

    hash_attr is the key's hash attribute; sort_attrs the attributes moto sorts by after it;
    required the attributes an item must carry to be in the index (its range attributes).
    """

    def __init__(self, hash_attr: str, sort_attrs: list[str], required: list[str]) -> None:
        self.hash_attr, self.sort_attrs, self.required = hash_attr, sort_attrs, required
        self.runs: dict[tuple[str, Any], list[tuple[tuple[Any, ...], int]]] = {}
        self.heads: dict[tuple[str, Any], list[Any]] = {}
        self.items: dict[int, Any] = {}
        self.where: dict[Any, tuple[tuple[str, Any], tuple[tuple[Any, ...], int]]] = {}

    def _entry(self, item: Any) -> tuple[tuple[str, Any], tuple[Any, ...]] | None:
        """(hash, sort key) of an item, or None when the key leaves the item out."""
        attrs = item.attrs
        value = attrs.get(self.hash_attr)
        if value is None or any(name not in attrs for name in self.required):
            return None
        try:
            key = (value.type, _native(value))
        except _Unkeyable:
            return None  # moto's equality with a scalar query value never holds either
        return key, tuple(_native(attrs[name]) for name in self.sort_attrs)

    def remove(self, primary: Any) -> None:
        """Take the item stored under a primary key out of the index."""
        found = self.where.pop(primary, None)
        if found is None:
            return
        key, entry = found
        run, heads = self.runs[key], self.heads[key]
        at = bisect.bisect_left(run, entry)
        del run[at]
        del heads[at]
        del self.items[entry[1]]
        if not run:
            del self.runs[key], self.heads[key]

    def add(self, primary: Any, item: Any) -> None:
        """Put an item into the index under its primary key (after any earlier version left)."""
        found = self._entry(item)
        if found is None:
            return
        key, sort_key = found
        entry = (sort_key, id(item))
        run = self.runs.setdefault(key, [])
        heads = self.heads.setdefault(key, [])
        at = bisect.bisect_left(run, entry)
        run.insert(at, entry)
        heads.insert(at, sort_key[0] if sort_key else None)
        self.items[id(item)] = item
        self.where[primary] = (key, entry)

    def candidates(self, value: Any, range_comparison: str | None, range_objs: list[Any],
                   limit: int | None, start: tuple[Any, ...] | None, forward: bool) -> list[Any]:
        """The items a query on hash value `value` may return, in moto's order: every item of
        the hash value, or, when the range condition is on the first sort attribute, the part
        of them a page starting after `start` and holding `limit` items needs."""
        key = (value.type, _native(value))
        run, heads = self.runs.get(key, []), self.heads.get(key, [])
        low, high = 0, len(run)
        exact = True
        if range_comparison is not None:
            bounds = [_native(obj) for obj in range_objs]
            low, high, exact = _range_bounds(heads, range_comparison, bounds)
        if start is not None:
            at = bisect.bisect_left(run, (start,))
            if forward:
                low = max(low, at - 1)
            else:
                high = min(high, at + 2)
        if limit is not None and (exact or forward):
            if forward:
                high = min(high, low + limit + _WINDOW_SLACK)
            else:
                low = max(low, high - limit - _WINDOW_SLACK)
        # moto ends a full page at the next item of the hash value, whether it meets the
        # range condition or not: one item past the range's end is kept for that.
        if forward and high < len(run):
            high += 1
        elif not forward and low > 0:
            low -= 1
        found = [self.items[entry[1]] for entry in run[low:high]]
        if (low, high) != (0, len(run)) and \
                sum(item.size() for item in found) + _MAX_ITEM_BYTES > _RESULT_SIZE_LIMIT:
            found = [self.items[entry[1]] for entry in run]
        return found


_RESULT_SIZE_LIMIT = 1000000


def _range_bounds(heads: list[Any], comparison: str, bounds: list[Any]) -> tuple[int, int, bool]:
    """(low, high, exact): the slice of sorted first sort values a range condition keeps;
    exact is False when items past `high` may also fail it but were not cut (BEGINS_WITH)."""
    left, right = bisect.bisect_left, bisect.bisect_right
    n = len(heads)
    if comparison in ("EQ", "="):
        return left(heads, bounds[0]), right(heads, bounds[0]), True
    if comparison in ("LT", "<"):
        return 0, left(heads, bounds[0]), True
    if comparison in ("LE", "<="):
        return 0, right(heads, bounds[0]), True
    if comparison in ("GT", ">"):
        return right(heads, bounds[0]), n, True
    if comparison in ("GE", ">="):
        return left(heads, bounds[0]), n, True
    if comparison == "BETWEEN":
        return left(heads, bounds[0]), max(left(heads, bounds[0]), right(heads, bounds[1])), True
    if comparison == "BEGINS_WITH":
        return left(heads, bounds[0]), n, False
    return 0, n, False


def _key_layout(table: Any, index_name: str | None) -> tuple[str, list[str], list[str]] | None:
    """(hash attribute, sort attributes after it, required attributes) of a table's key or
    index, as moto's query sorts and filters it; None for a key this index cannot serve."""
    if index_name is None:
        if table.range_key_attr is None:
            return None
        return table.hash_key_attr, [table.range_key_attr], []
    index = next((i for i in table.all_indexes() if i.name == index_name), None)
    if index is None:
        return None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(hashes) != 1:
        return None
    if ranges:
        range_attrs: list[str | None] = [*ranges, table.range_key_attr]
    else:
        first = table.range_key_attr if (table.range_key_attr and index in (table.global_indexes or [])) \
            else table.hash_key_attr
        range_attrs = [first, table.range_key_attr]
    order = table._generate_attr_to_sort_by([*hashes, table.hash_key_attr], range_attrs)
    return hashes[0], order[1:], ranges


def _primary(table: Any, item: Any) -> Any:
    """A hashable primary key of an item."""
    return (item.hash_key, item.range_key) if table.range_key_attr else item.hash_key


class _TableKeys:
    """The keyed indexes built so far for one table, each kept in step with its writes."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str | None, str, tuple[str, ...], tuple[str, ...]], _KeyedItems | None] = {}

    def get(self, table: Any, index_name: str | None) -> _KeyedItems | None:
        """The index for a query on index_name (None: the primary key), built on first use."""
        layout = _key_layout(table, index_name)
        if layout is None:
            return None
        name = (index_name, layout[0], tuple(layout[1]), tuple(layout[2]))
        if name not in self.keys:
            keyed = _KeyedItems(*layout)
            try:
                for item in table.all_items():
                    keyed.add(_primary(table, item), item)
            except (_Unkeyable, TypeError):
                keyed = None  # a sort value moto could not order either: moto's own path
            self.keys[name] = keyed
        return self.keys[name]

    def stored(self, table: Any, primary: Any, item: Any | None) -> None:
        """Record that the item under a primary key is now item (None: deleted)."""
        for name, keyed in list(self.keys.items()):
            if keyed is None:
                continue
            try:
                keyed.remove(primary)
                if item is not None:
                    keyed.add(primary, item)
            except (_Unkeyable, TypeError):
                self.keys[name] = None


_TABLE_KEYS: "weakref.WeakKeyDictionary[Any, _TableKeys]" = weakref.WeakKeyDictionary()


def _table_keys(table: Any) -> _TableKeys:
    """A table's keyed indexes."""
    keys = _TABLE_KEYS.get(table)
    if keys is None:
        keys = _TABLE_KEYS[table] = _TableKeys()
    return keys


def install_keyed_queries() -> Undo:
    """Make a query read only the items under its hash key, not the whole table.

    Gap (speed only): moto 5.2.5 answers every query, on the table or on an index, by
    sorting all the table's items and testing each: O(table size) per query, so the
    task pool's open_items query slows down with every item of every job, and each lease
    makes two. For each key a query uses, this keeps per hash value the items carrying it,
    sorted as moto sorts them, in step with every put, update and delete; a query then
    hands moto only the items of its hash value (or, under a range condition on the first
    sort attribute, the slice a page of `limit` items after the start key needs), and
    moto's own code filters, orders, pages and projects them as before (a page it projects
    on names is not deep-copied first: the projection makes new items). The local stack
    installs it (the tests run moto's own query); returns an `Undo` (a no-op when it was
    installed already).
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.table import Table

    current_query = Table.__dict__["query"]
    if getattr(current_query, _KEYED_QUERY_MARK, False):
        return Undo(lambda: None)
    current_put = Table.__dict__["put_item"]
    current_delete = Table.__dict__["delete_item"]
    current_update = DynamoDBBackend.__dict__["update_item"]

    def query(self: Any, hash_key: Any, range_comparison: str | None, range_objs: list[Any],
              limit: int, exclusive_start_key: dict[str, Any], scan_index_forward: bool,
              projection_expressions: Any, index_name: str | None = None,
              consistent_read: bool = False, filter_expression: Any = None,
              hash_key_conditions: list[tuple[str, Any]] | None = None,
              range_key_conditions: list[tuple[str, str, list[Any]]] | None = None,
              **filter_kwargs: Any) -> Any:
        def moto(candidates: list[Any] | None) -> Any:
            if candidates is not None:
                self.all_items = lambda: candidates
            if projection_expressions:
                # The projection builds new items from the page: the page need not be copied first.
                table_module.copy = _PageNotCopied
            try:
                return current_query(self, hash_key, range_comparison, range_objs, limit,
                                     exclusive_start_key, scan_index_forward,
                                     projection_expressions, index_name, consistent_read,
                                     filter_expression, hash_key_conditions=hash_key_conditions,
                                     range_key_conditions=range_key_conditions, **filter_kwargs)
            finally:
                table_module.copy = copy
                if candidates is not None:
                    del self.all_items

        with _DYNAMODB_LOCK:
            keyed = _table_keys(self).get(self, index_name)
            value = _hash_value(keyed, index_name, hash_key, hash_key_conditions)
            if keyed is None or value is None or value.type not in _KEY_TYPES:
                return moto(None)
            conditions = range_key_conditions or []
            narrow = not filter_kwargs and (range_comparison is None or len(conditions) == 0 or (
                len(conditions) == 1 and conditions[0][0] == keyed.sort_attrs[0]))
            forward = scan_index_forward is not False
            try:
                candidates = keyed.candidates(value, range_comparison, range_objs, limit,
                                              _start_key(keyed, exclusive_start_key), forward) \
                    if narrow else keyed.candidates(value, None, [], None, None, forward)
            except (_Unkeyable, TypeError):
                candidates = keyed.candidates(value, None, [], None, None, forward)
            return moto(candidates)

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            item = current_put(self, *args, **kwargs)
            if self in _TABLE_KEYS:
                _table_keys(self).stored(self, _primary(self, item), item)
            return item

    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        with _DYNAMODB_LOCK:
            item = current_delete(self, hash_key, range_key)
            if item is not None and self in _TABLE_KEYS:
                _table_keys(self).stored(self, _primary(self, item), None)
            return item

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            try:
                return current_update(self, table_name, key, *args, **kwargs)
            finally:
                _restored_after_update(self, table_name, key)

    for fn, wrapped in ((query, current_query), (put_item, current_put),
                        (delete_item, current_delete), (update_item, current_update)):
        setattr(fn, _KEYED_QUERY_MARK, True)
        setattr(fn, _LOCKED_MARK, True)
        setattr(fn, "__wrapped__", wrapped)
    Table.query = query  # type: ignore[method-assign]
    Table.put_item = put_item  # type: ignore[method-assign]
    Table.delete_item = delete_item  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]

    def revert() -> None:
        Table.query = current_query  # type: ignore[method-assign]
        Table.put_item = current_put  # type: ignore[method-assign]
        Table.delete_item = current_delete  # type: ignore[method-assign]
        DynamoDBBackend.update_item = current_update  # type: ignore[method-assign]
        _TABLE_KEYS.clear()

    return Undo(revert)


def _restored_after_update(backend: Any, table_name: str, key: dict[str, Any]) -> None:
    """Re-index the item an UpdateItem changed in place (or created)."""
    table = backend.tables.get(table_name)
    if table is None or table not in _TABLE_KEYS:
        return
    try:
        hash_value, range_value = backend.get_keys_value(table, key)
    except Exception:  # an invalid key: nothing was written
        return
    item = table.get_item(hash_value, range_value) if (range_value is not None or not table.range_key_attr) else None
    primary = (hash_value, range_value) if table.range_key_attr else hash_value
    _table_keys(table).stored(table, primary, item)


def _hash_value(keyed: _KeyedItems | None, index_name: str | None, hash_key: Any,
                hash_key_conditions: list[tuple[str, Any]] | None) -> Any:
    """The value a query asks of the key's hash attribute (None when it cannot be told)."""
    if keyed is None:
        return None
    for name, value in hash_key_conditions or []:
        if name == keyed.hash_attr:
            return value
    return hash_key if index_name is None else None


def _start_key(keyed: _KeyedItems, start: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """The sort key of a query's ExclusiveStartKey (None without one, or when it lacks one
    of the sort attributes: moto's own paging then skips every earlier item)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if not start or any(name not in start for name in keyed.sort_attrs):
        return None
    return tuple(_native(DynamoType(start[name])) for name in keyed.sort_attrs)


class _KeepsNothing(list):  # type: ignore[type-arg]
    """Stands in for a moto model's list of every instance ever made: it keeps none."""

    def append(self, instance: Any) -> None:
        """Forget the instance."""


def install_untracked_items() -> Undo:
    """Stop moto remembering every DynamoDB item and SQS message it ever made.

    Gap (memory): moto 5.2.5 appends each instance of each of its models to a class-level
    list (for `/moto-api/data.json` and its reset), and never lets go. An item is made for
    every copy moto takes (each UpdateItem, each query result, each transaction's
    snapshot) and a message for every send and receive, so under load the local stack
    grew by megabytes a second and by gigabytes a job. Those two models stop being
    listed; `/moto-api/data.json` then shows no items or messages (the tables and queues
    hold them as before). The local stack installs it; returns an `Undo`.
    """
    from moto.dynamodb.models.dynamo_type import Item
    from moto.sqs.models import Message

    saved = {model: model.__dict__.get("instances_tracked") for model in (Item, Message)}
    for model in saved:
        setattr(model, "instances_tracked", _KeepsNothing())

    def revert() -> None:
        for model, tracked in saved.items():
            setattr(model, "instances_tracked", [] if tracked is None else tracked)

    return Undo(revert)


def install_listed_moto_modules() -> Undo:
    """List moto's service packages once instead of on every request.

    Gap (speed only): the moto server finds the backend of every request by listing moto's
    package directory and testing each entry for being a directory, under the server's
    dispatch lock: about a hundred system calls per request, paid by every call the local
    stack makes. The directory does not change while the server runs, so the list is
    read once and the same names are given after. The local stack installs it; returns
    an `Undo`.
    """
    from moto import backends

    current = backends.list_of_moto_modules
    listed: list[tuple[str, ...]] = []

    def list_of_moto_modules() -> tuple[str, ...]:
        if not listed:
            listed.append(tuple(current()))
        return listed[0]

    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]

    def revert() -> None:
        backends.list_of_moto_modules = current  # type: ignore[assignment]

    return Undo(revert)


_PROJECTION_MARK = "__crowd_named_projection__"


def install_named_projections() -> Undo:
    """Project an item on plain attribute names by converting only those attributes.

    Gap (speed only): for each name of a ProjectionExpression moto 5.2.5 converts the
    whole item to plain JSON and back, so a query page of 200 items projected on eight
    names converts 1,600 whole items (with their answers, leases and data) to keep a few
    small fields: the task pool's largest cost on the local stack. When every name is a
    plain, distinct top-level name, each attribute is converted the way moto converts it,
    once, and the item is built from them as moto builds it; any other expression (a
    nested path, a list index, a name twice) goes to moto. The local stack installs it;
    returns an `Undo`.
    """
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from moto.dynamodb.models.dynamo_type import Item

    current = Item.__dict__["project"]
    if getattr(current, _PROJECTION_MARK, False):
        return Undo(lambda: None)
    deserializer, serializer = TypeDeserializer(), TypeSerializer()

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        names = [path[0] for path in projection_expressions if len(path) == 1]
        if len(names) != len(projection_expressions) or len(set(names)) != len(names) or \
                any("[" in name for name in names):
            return current(self, projection_expressions)
        result = {name: deserializer.deserialize(self.attrs[name].to_regular_json())
                  for name in names if name in self.attrs}
        return Item(hash_key=self.hash_key, range_key=self.range_key,
                    attrs=serializer.serialize(result)["M"])

    setattr(project, _PROJECTION_MARK, True)
    setattr(project, "__wrapped__", current)
    Item.project = project  # type: ignore[method-assign]

    def revert() -> None:
        Item.project = current  # type: ignore[method-assign]

    return Undo(revert)


class _QueueForSending:
    """A queue as SendMessage sees it: its attribute map holds only the one SendMessage reads."""

    def __init__(self, queue: Any) -> None:
        """Stand in for queue."""
        self._queue = queue

    def __getattr__(self, name: str) -> Any:
        """Everything else is the queue's own."""
        return getattr(self._queue, name)

    @property
    def attributes(self) -> dict[str, Any]:
        """ContentBasedDeduplication as the queue's attribute map gives it (FIFO queues only)."""
        queue = self._queue
        if not queue.fifo_queue:
            return {}
        value = queue.content_based_deduplication
        return {"ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value}


def install_cheap_sqs_send() -> Undo:
    """Make SendMessage read the one queue attribute it needs without counting the queue.

    Gap (speed only): on every SendMessage moto 5.2.5 builds the queue's whole attribute
    map to read ContentBasedDeduplication, and the map counts the queue's visible,
    delayed and in-flight messages one by one, with a clock read for each: O(queue
    depth) per send, a fifth of the local stack's CPU while the results queue holds a
    backlog. During a send, the queue it looks up first hands it that one attribute,
    computed as the map computes it. The local stack installs it; returns an `Undo`.
    """
    from moto.sqs.models import SQSBackend

    current_send, current_get = SQSBackend.__dict__["send_message"], SQSBackend.__dict__["get_queue"]
    if getattr(current_send, _PROJECTION_MARK, False):
        return Undo(lambda: None)
    sending = threading.local()

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = getattr(sending, "on", False)
        sending.on = True
        try:
            return current_send(self, *args, **kwargs)
        finally:
            sending.on = outer

    def get_queue(self: Any, queue_name: str) -> Any:
        queue = current_get(self, queue_name)
        if not getattr(sending, "on", False):
            return queue
        sending.on = False  # only the send's own look-up: anything it calls sees the queue
        return _QueueForSending(queue)

    for fn, wrapped in ((send_message, current_send), (get_queue, current_get)):
        setattr(fn, _PROJECTION_MARK, True)
        setattr(fn, "__wrapped__", wrapped)
    SQSBackend.send_message = send_message  # type: ignore[method-assign]
    SQSBackend.get_queue = get_queue  # type: ignore[method-assign]

    def revert() -> None:
        SQSBackend.send_message = current_send  # type: ignore[method-assign]
        SQSBackend.get_queue = current_get  # type: ignore[method-assign]

    return Undo(revert)


class _NotPlain(Exception):
    """An attribute value with a member of a kind the direct writer does not know."""


def install_all() -> None:
    """Install every process-wide shim the project needs (DynamoDB lock, CloudFormation resource shims)."""
    install_dynamodb_lock()
    install_item_level_transaction_rollback()
    install_cheap_sqs_retention_check()
    install_rest_api_import_shim()
    install_cloudformation_table_shim()
    install_cloudformation_bucket_shim()
    install_cloudformation_kms_key_tags_shim()
    install_cloudformation_state_machine_shim()
    install_step_functions_execution_name_shim()
    install_json_template_reading()
    install_checked_definition_memory()
    install_fast_attribute_values()


def _stage_name(function_name: str, handlers: Mapping[str, Handler]) -> str | None:
    """The handler key whose `-<key>` ends the function name, preferring the longest."""
    matches = [name for name in handlers if function_name.endswith(f"-{name}") or function_name == name]
    return max(matches, key=len) if matches else None


def _function_error(exc: BaseException) -> str:
    """The payload AWS Lambda returns for an unhandled Python exception."""
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": "",
            # Drop the routing wrapper's own frame, as Lambda's runtime does for its bootstrap.
            "stackTrace": traceback.format_tb(exc.__traceback__.tb_next if exc.__traceback__ else None),
        }
    )


def route_lambda_invocations(handlers: Mapping[str, Handler]) -> Undo:
    """Run invocations of functions named `*-<name>` in-process as handlers[name](event, context).

    Gap: moto runs Lambda code only in Docker (not available here), and
    `{"lambda": {"use_docker": false}}` just echoes the input. Step Functions
    Lambda tasks and `lambda:Invoke` calls reach `LambdaFunction._invoke_lambda`,
    which this replaces for matching names. A handler's return value is the JSON
    payload; an exception becomes a function error whose payload carries
    `errorType` = the exception's class name, which moto's interpreter (like AWS)
    uses as the task's error name, so Retry/Catch on e.g. `TransientError` match.
    Handlers run in the calling thread (the interpreter's, under Step Functions)
    and see this process's environment, not the function's configured variables.
    Returns an `Undo` (callable or context manager); undo nested routings in
    reverse order.
    """
    from moto.awslambda.models import LambdaFunction

    routes = dict(handlers)
    original = LambdaFunction.__dict__["_invoke_lambda"]

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        name = _stage_name(self.function_name, routes)
        if name is None:
            passthrough: tuple[str, bool, str] = original(self, event)
            return passthrough
        if isinstance(event, (str, bytes)):
            # moto passes the literal string "{}" for an empty body.
            event = json.loads(event or "{}")
        context = lambda_context(
            self.function_name,
            self.region,
            float(self.timeout or 3),
            invoked_function_arn=self.function_arn,
            memory_limit_in_mb=int(self.memory_size or 128),
        )
        try:
            result = routes[name]({} if event is None else event, context)
        except Exception as exc:  # noqa: BLE001 - every handler error is a function error
            return _function_error(exc), True, ""
        try:
            return json.dumps(result), False, ""
        except (TypeError, ValueError) as exc:
            return json.dumps({"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError"}), True, ""

    setattr(LambdaFunction, "_invoke_lambda", _invoke_lambda)

    def revert() -> None:
        setattr(LambdaFunction, "_invoke_lambda", original)

    return Undo(revert)


def _placeholder_zip() -> bytes:
    """A deployment package whose handler is never run (invocations are routed in-process)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    raise RuntimeError('routed in-process')\n")
    return buffer.getvalue()


def create_stage_functions(
    lambda_client: Any, iam_client: Any, app_name: str = "crowd", stage: str = "dev"
) -> dict[str, str]:
    """Create placeholder functions `<app>-<stage>-<fn>` for every stage function; return {fn: arn}.

    Gap: on AWS `chalice deploy` creates these; on moto nothing does, and a Step
    Functions Lambda task fails with ResourceNotFound unless the function exists.
    Pair with `route_lambda_invocations` so invoking them runs the app's code.
    Idempotent: existing functions and the role are reused.
    """
    role_name = f"{app_name}-{stage}-stage-functions-local"
    try:
        role_arn = iam_client.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam_client.exceptions.NoSuchEntityException:
        role_arn = iam_client.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )["Role"]["Arn"]
    code = _placeholder_zip()
    arns: dict[str, str] = {}
    for fn in STAGE_FUNCTIONS:
        name = f"{app_name}-{stage}-{fn}"
        try:
            arns[fn] = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
            continue
        except lambda_client.exceptions.ResourceNotFoundException:
            pass
        arns[fn] = lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": code},
            Timeout=60,
            MemorySize=256,
        )["FunctionArn"]
    return arns


class _NoSleepTime(SimpleNamespace):
    """Stands in for the `time` module inside moto's retrier: sleep() returns at once."""

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)

    @staticmethod
    def sleep(_seconds: float) -> None:
        """Skip the back-off."""


def make_step_functions_instant() -> Undo:
    """Make Retry back-off and Wait states return at once in moto's ASL interpreter.

    Gap: the interpreter really sleeps (IntervalSeconds x BackoffRate^n, Wait
    seconds), which makes retry tests take seconds to minutes. Returns an `Undo`.
    """
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    original_time = getattr(retrier_decl, "time")
    original_wait = WaitFunction.__dict__["_wait_interval"]
    setattr(retrier_decl, "time", _NoSleepTime())

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        return None

    setattr(WaitFunction, "_wait_interval", _wait_interval)

    def revert() -> None:
        setattr(retrier_decl, "time", original_time)
        setattr(WaitFunction, "_wait_interval", original_wait)

    return Undo(revert)


@contextmanager
def routed_stage_functions(
    lambda_client: Any,
    iam_client: Any,
    handlers: Mapping[str, Handler],
    app_name: str = "crowd",
    stage: str = "dev",
) -> Iterator[dict[str, str]]:
    """Create the stage functions and route their invocations to handlers for the with-block."""
    arns = create_stage_functions(lambda_client, iam_client, app_name, stage)
    with route_lambda_invocations(handlers):
        yield arns

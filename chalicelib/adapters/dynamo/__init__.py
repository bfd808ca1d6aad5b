"""DynamoDB repositories (pynamodb), one module per repository with its record-to-domain
conversions. Conditional single-item writes and atomic counters keep leases, answers and
counters exact; a transaction only where two items must move together (writes.py holds both,
and what their failures mean)."""
from chalicelib.adapters.dynamo.accounts import DynamoAccounts
from chalicelib.adapters.dynamo.catalog import DynamoCatalog
from chalicelib.adapters.dynamo.items import DynamoItems, item_from_model
from chalicelib.adapters.dynamo.jobs import COUNT_ATTEMPTS, DynamoJobs, job_from_model
from chalicelib.adapters.dynamo.ledger import DynamoLedger
from chalicelib.adapters.dynamo.paging import newest_first
from chalicelib.adapters.dynamo.quotes import DynamoQuotes
from chalicelib.adapters.dynamo.results import DynamoResults
from chalicelib.adapters.dynamo.worker_stats import EVERYWHERE, DynamoWorkerStats
from chalicelib.adapters.dynamo.writes import conditional_update, transact_once

__all__ = [
    "COUNT_ATTEMPTS", "EVERYWHERE", "DynamoAccounts", "DynamoCatalog", "DynamoItems", "DynamoJobs",
    "DynamoLedger", "DynamoQuotes", "DynamoResults", "DynamoWorkerStats", "conditional_update",
    "item_from_model", "job_from_model", "newest_first", "transact_once",
]

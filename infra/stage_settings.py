"""What each stage runs with beyond its stack's names: its log level and each function's memory.

`make deploy` (and `python -m infra.deploy settings --stage S`) writes these into the stage in
`.chalice/config.json`: the log level as `POWERTOOLS_LOG_LEVEL` (what powertools' Logger reads
at import), the memory sizes as each function's `lambda_memory_size` (the REST API's function is
`api_handler`). A test holds config.json to this module, so a change here is a change of
what gets deployed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL_VARIABLE = "POWERTOOLS_LOG_LEVEL"

# MB per function, from bench/lambda_memory.py (bench/README.md, "Lambda memory per function"):
# the smallest size, in steps of 64 MB, holding twice the function's measured peak (for the
# aggregation stages and ingest, on a 1,000,000-item job) at which its worst call is projected
# to take at most half its timeout.
MEMORY_MB: dict[str, int] = {
    "api_handler": 256,
    "ingest_items": 256,
    "count_answers": 192,
    "deliver_webhooks": 192,
    "finalize_due_jobs": 192,
    "load_answers": 384,
    "fit_model": 1536,
    "aggregate_shard": 192,
    "publish_results": 256,
    "mark_done": 192,
    "mark_failed": 192,
}


@dataclass(frozen=True)
class StageSettings:
    """One stage's settings.

    log_level: the app's least severe logged level. The hot paths (lease, submit, release,
    counting) log per request only at DEBUG; their counts are metrics, which go out whatever
    the level.
    """

    log_level: str

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")


# dev: every request's line, for whoever is testing against it (its traffic is small).
# prod: warnings and errors only: an operator works from metrics, alarms and errors, and no
# line logged at INFO, now or later, costs money per judgment there.
STAGES: dict[str, StageSettings] = {
    "dev": StageSettings(log_level="DEBUG"),
    "prod": StageSettings(log_level="WARNING"),
}
DEFAULT = StageSettings(log_level="INFO")


def settings_for(stage: str) -> StageSettings:
    """The stage's settings (a stage not named here gets INFO)."""
    return STAGES.get(stage, DEFAULT)


def apply_settings(config: dict[str, Any], stage: str,
                   settings: StageSettings | None = None) -> dict[str, Any]:
    """config.json with the stage's log level and memory sizes written into its stage."""
    settings = settings or settings_for(stage)
    config = copy.deepcopy(config)
    staged = config["stages"][stage]
    staged.setdefault("environment_variables", {})[LOG_LEVEL_VARIABLE] = settings.log_level
    functions = staged.setdefault("lambda_functions", {})
    for function, megabytes in MEMORY_MB.items():
        functions.setdefault(function, {})["lambda_memory_size"] = megabytes
    return config

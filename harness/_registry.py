"""inspect-ai entry point: registers the `local/...` model provider and the benchmark tasks."""

import harness.tasks  # noqa: F401  (one task per registered benchmark, and the generic `benchmark`)
from harness.providers import LocalModelAPI  # noqa: F401

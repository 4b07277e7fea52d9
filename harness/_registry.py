"""inspect-ai entry point: registers the `local/...` model provider and the benchmark tasks."""

from harness.providers import LocalModelAPI  # noqa: F401
from harness.tasks import appworld, tau3_airline, toy  # noqa: F401

"""toy: generated key-lookup tasks, small enough to show learning on a CPU in minutes."""

from harness.toy.benchmark import Toy, scripted_messages
from harness.toy.episode import ToyEpisode
from harness.toy.tasks import ToyTask, make_task, split_ids

__all__ = ["Toy", "ToyEpisode", "ToyTask", "make_task", "scripted_messages", "split_ids"]

"""tunekit.widgets: the notebook panels, ipywidgets 8 + plotly.

- ``ConfigPanel``: a stage's main keys as a form; ``.config``; "Save YAML".
- ``DataPanel``: rows as conversations and as tokens coloured by loss; a length histogram.
- ``TrainPanel``: ``tk.train`` with a live chart, progress, the last values and a Stop button.
- ``ChatPanel``: prompts and answers, one model or two side by side.
- ``EvalPanel``: a ``tk.evaluate`` result: before/after table, a bar chart, the held-out answers side by side.
- ``compare_runs``: one chart of a metric across finished runs (their ``trainer_log.jsonl``).

Installed as ``tunekit.widgets`` (pyproject maps this folder): panels depend on tunekit, never
the reverse, and call the same functions as the CLI.
"""

from tunekit.models import quiet_loading

from .chat_panel import ChatPanel
from .compare import compare_runs
from .config_panel import ConfigPanel
from .data_panel import DataPanel
from .eval_panel import EvalPanel
from .train_panel import TrainPanel

__all__ = ["ChatPanel", "ConfigPanel", "DataPanel", "EvalPanel", "TrainPanel", "compare_runs"]

quiet_loading()  # in a notebook the loading bars would each be a widget of their own; the panels show progress

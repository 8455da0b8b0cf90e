"""tunekit.widgets: the ipywidgets + plotly panels (ConfigPanel, DataPanel, TrainPanel, ChatPanel).

Installed as ``tunekit.widgets`` (pyproject maps this folder). Panels depend on tunekit, never the
reverse, and call the same functions as the CLI. They arrive with the notebooks.
"""

"""ipywidgets panels: they read and act through the workstation services only (never the stores)."""

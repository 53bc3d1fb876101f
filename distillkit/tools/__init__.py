"""Command-line tools beside training: check, modules, export, plot."""

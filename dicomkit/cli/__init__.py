"""The command line: thin Typer commands; the one place that prints errors and sets exit codes."""

"""A bare Typer app with one command: the floor for `dicomkit --help` (same Typer, same Rich)."""

import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def bye() -> None:
    """Say goodbye."""


if __name__ == "__main__":
    app()

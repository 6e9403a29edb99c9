from dicomkit.cli.main import run

run()

from chatd.cli import run

run()

from tally.cli import app

app()

from memento.cli import app

app()

"""Commands run on a finished (or running) run directory: diagnose the model, evaluate
controllers side by side."""

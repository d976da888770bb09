"""Built-in verifiable tasks for the language track."""

"""One module per command (memray's layout): each parses its options and calls the library;
`traceparse.cli` holds the app, the error handling and `main`."""

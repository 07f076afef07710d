"""Documents: uploads streamed and hashed, the blob store, text extraction per format, the
``ingest`` job kind, the document service and full-text search."""

"""Documents: blob store, uploads, text extraction, the document service and search."""

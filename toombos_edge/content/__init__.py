"""Content: documents (ingestion, blobs, extraction, search) and what is made of them
(generation, templates, publishing)."""

"""Content: documents and what is made of them (generation, templates, publishing)."""

"""Content made from documents: generation requests, templates, rendering per channel,
stored items and their versions, publishing to each channel's sink."""

"""Projects (seed 002): named groups of documents, with a description and metadata.

The record is :mod:`toombos_edge.records.project`, its storage :mod:`toombos_edge.store.projects`;
import the service from ``projects.service`` (this package re-exports nothing, so that
importing the record never pulls the documents' service in).
"""

"""Projects (seed 002): named groups of documents, with a description and metadata.

Import from the modules (``projects.service``, ``projects.model``): the documents' service
reads ``projects.repository``, and a package that re-exported the service (which uses the
documents' service) would import itself in a circle.
"""

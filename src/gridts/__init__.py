"""Rules of the platform's data model that the ingest, the generator and the API share."""

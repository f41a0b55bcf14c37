"""MQTT ingest: topic grammar (``topics``) and the subscriber process (``listener``)."""

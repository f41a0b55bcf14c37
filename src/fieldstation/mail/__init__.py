"""E-mail ingest: rules that turn a message into an entry (``rules``) and the IMAP poller (``poller``)."""

"""Alerts (issue 19): rules per channel, their evaluation, and the delivery of notifications.

- :mod:`.rules`: making, changing and listing rules (API, CLI and dashboard share them);
- :mod:`.evaluate`: thresholds from the committed readings, silences against the clock; a change
  of state is recorded with its notifications (the outbox) in one transaction;
- :mod:`.deliver`: the outbox, sent by webhook, e-mail or MQTT, at least once, with retries.

The maintenance worker (:mod:`fieldstation.worker`) runs the last two.
"""

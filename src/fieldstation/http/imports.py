"""CSV import over the management API: the same import as the dashboard's and the CLI's."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Response, jsonify, request

from fieldstation import manage
from fieldstation.auth import current_api_user
from fieldstation.csvimport import import_file
from fieldstation.errors import BadRequest
from fieldstation.http import api_bp
from fieldstation.http.bodies import raw_body


@api_bp.post("/channels/<int:channel_id>/import.csv")
def import_csv(channel_id: int) -> tuple[Response, int]:
    """Import a CSV body (ThingSpeak's export or a Fieldstation download) into one of my channels.

    200 with the report when rows were imported; 400 with it when the file or a
    row was refused (nothing written unless ``skip_bad=true``). The body (gzip
    allowed) is capped by MAX_CONTENT_LENGTH and MAX_DECOMPRESSED_LENGTH.
    """
    channel = manage.channel_for(current_api_user(), channel_id)
    zone_name = request.args.get("timezone", "UTC")
    try:
        zone: dt.tzinfo = dt.UTC if zone_name.upper() == "UTC" else ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {zone_name[:60]!r}") from None
    skip_bad = request.args.get("skip_bad", "false").lower() in ("1", "true", "yes")
    report = import_file(channel, io.BytesIO(raw_body()), zone, skip_bad=skip_bad)
    body = {
        "rows": report.rows,
        "imported": report.imported,
        "readings": report.readings,
        "bad_rows": report.bad_rows,
        "errors": [{"line": line, "message": message} for line, message in report.errors],
        "error": report.fatal,
    }
    refused = report.fatal is not None or (report.bad_rows > 0 and report.imported == 0)
    return jsonify(body), 400 if refused else 200

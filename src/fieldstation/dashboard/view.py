"""The channel page, its live-update JSON, CSV download and upload, and the embeddable chart."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, jsonify, redirect, render_template, request, stream_with_context, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from fieldstation import charts, export, manage, query
from fieldstation.dashboard import csvio, monitoring, plots
from fieldstation.dashboard.blueprint import bp
from fieldstation.dashboard.forms import ImportForm
from fieldstation.dashboard.ranges import (
    PRESETS,
    Window,
    chart_height,
    chart_width,
    viewer_zone,
    window,
)
from fieldstation.dashboard.session import login_required, me, signed_in
from fieldstation.errors import NotFound
from fieldstation.models import Channel
from fieldstation.points import plain_int
from fieldstation.timeunits import MIN_TS_US, now_us

#: Seconds between the page script's polls of the live endpoint.
POLL_SECONDS = 5


def visible_channel(channel_id: int) -> Channel:
    """The channel if this viewer may see it: its owner (or an admin), a read key, or public.

    :raise NotFound: missing or private to someone else (never 403: ids cannot be probed).
    """
    user = signed_in()
    if user is not None:
        try:
            return manage.channel_for(user, channel_id)
        except NotFound:
            pass
    channel = query.readable_channel(channel_id, request.args.get("api_key"))
    if channel is None:
        raise NotFound("channel not found")
    return channel


def _is_owner(channel: Channel) -> bool:
    user = signed_in()
    return user is not None and (user.id == channel.owner_id or user.is_admin)


def _context(channel: Channel) -> dict[str, Any]:
    zone = viewer_zone(request.args, request.cookies)
    win = window(request.args, zone)
    width = chart_width(request.args, request.cookies, 560)
    wide = chart_width(request.args, request.cookies, 1120, wide=True)
    pair = request.args.get("pair")
    return {
        "channel": channel,
        "zone": zone,
        "win": win,
        "latest": query.latest_entry(channel.id),
        "charts": plots.channel_charts(channel, win, zone, width, wide, pair),
        "totals": plots.totals_of(channel, zone),
        "pair": plots.pair_of(channel, pair),
        "owner": _is_owner(channel),
        "monitoring": monitoring.summary(channel) if _is_owner(channel) else None,
    }


@bp.get("/channels/<int:channel_id>")
def thingspeak_channel_page(channel_id: int) -> WerkzeugResponse:
    """ThingSpeak's address of a channel's page (``/channels/ID``), as people type it: the page here.

    The query string goes along (a range, a read key); whether the channel may be seen is
    :func:`channel_view`'s to decide.
    """
    page = url_for(".channel_view", channel_id=channel_id)
    query_string = request.query_string.decode("latin-1")
    return redirect(f"{page}?{query_string}" if query_string else page)


@bp.get("/dashboard/channels/<int:channel_id>")
def channel_view(channel_id: int) -> str:
    """Newest entry on top, a chart per field and a two-axis chart, for the chosen range."""
    channel = visible_channel(channel_id)
    context = _context(channel)
    return render_template(
        "dashboard/channel.html",
        presets=list(PRESETS),
        poll_seconds=POLL_SECONDS,
        custom=_custom_inputs(context["win"], context["zone"]),
        **context,
    )


@bp.get("/dashboard/channels/<int:channel_id>/live")
def channel_live(channel_id: int) -> Response:
    """What the page script needs to redraw without a reload; just the version when nothing changed.

    The version is the channel's last write time: one indexed row read per poll.
    """
    channel = visible_channel(channel_id)
    version = str(channel.last_write_us or 0)
    if request.args.get("since") == version:
        return jsonify({"version": version, "changed": False})
    context = _context(channel)
    latest = render_template("dashboard/_latest.html", **context)
    start, end = _custom_inputs(context["win"], context["zone"])
    return jsonify(
        {
            "version": version,
            "changed": True,
            "latest": latest,
            "charts": context["charts"],
            "window": {"start": start, "end": end},
        }
    )


def _custom_inputs(win: Window, zone: dt.tzinfo) -> tuple[str, str]:
    """The window as ``datetime-local`` input values in the viewer's zone."""
    return charts.format_time(win.start, zone).replace(" ", "T"), charts.format_time(win.end, zone).replace(
        " ", "T"
    )


@bp.get("/dashboard/channels/<int:channel_id>/export.csv")
def export_csv(channel_id: int) -> Response:
    """The range shown, as CSV: the query module's exporter (same format as the API's export)."""
    channel = visible_channel(channel_id)
    win = window(request.args, viewer_zone(request.args, request.cookies))
    rows = export.channel_csv(channel.id, list(channel.fields), win.start, win.end)
    return Response(
        stream_with_context(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="channel-{channel.id}.csv"'},
    )


@bp.route("/dashboard/channels/<int:channel_id>/import", methods=["GET", "POST"])
@login_required
def import_csv(channel_id: int) -> tuple[str, int]:
    """Upload a CSV (as the download gives it) into the channel, through the store."""
    channel = manage.channel_for(me(), channel_id)
    form = ImportForm()
    report = None
    status = 200
    if form.validate_on_submit():
        zone = viewer_zone(request.args, request.cookies)
        report = csvio.import_file(channel, form.file.data.stream, zone, skip_bad=bool(form.skip_bad.data))
        status = 400 if report.fatal or (report.bad_rows and not report.imported) else 200
    elif form.errors:
        status = 400
    return render_template("dashboard/import.html", channel=channel, form=form, report=report), status


def _results_window(field_id: int) -> Window | None:
    """ThingSpeak's ``results=N`` (and no other range): from the N-th newest reading until now."""
    raw = request.args.get("results", "")
    other_range = any(request.args.get(k) for k in ("range", "days", "minutes", "start", "end"))
    results = plain_int(raw)
    if results is None or other_range:
        return None
    now = now_us()
    newest = query.series(field_id, MIN_TS_US, now + 1, limit=min(max(results, 1), 8000), descending=True)
    return Window(newest[-1].ts, now + 1, None) if newest else None


@bp.get("/channels/<int:channel_id>/charts/<int:number>")
def embed_chart(channel_id: int, number: int) -> str:
    """One chart for an iframe (ThingSpeak's URL): ``range``/``days``/``results``/``start``, size."""
    channel = visible_channel(channel_id)
    field = query.field_of(channel.id, number)
    if field is None:
        raise NotFound("channel has no such field")
    zone = viewer_zone(request.args, request.cookies)
    win = _results_window(field.id) or window(request.args, zone)
    width = chart_width(request.args, {}, default=450)
    height = chart_height(request.args, default=260)
    model = next(f for f in channel.fields if f.number == number)
    totals = {}
    if request.args.get("type") == "bars" and plots.has_totals(model):
        svg = plots.bar_chart(model, win, zone, width, height)
        found = plots.so_far(model, zone)  # as the channel page shows it, whatever the window
        totals = {model.number: found} if found is not None else {}
    else:
        svg = plots.field_chart(field, win, zone, width, height)
    title = request.args.get("title") or plots.label(field)
    return render_template(
        "dashboard/embed.html", channel=channel, field=field, svg=svg, title=title, totals=totals
    )

"""The dashboard's forms (Flask-WTF: each carries this session's CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length, Optional


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


class ActionForm(FlaskForm):
    """A form without fields: a button that POSTs (sign out, delete, revoke)."""


class FieldRow(Form):
    """One field of a channel: name, unit, kind, calibration, expression (number fixed by position)."""

    number = HiddenField()
    name = StringField("Name", validators=[Optional(), Length(max=255)])
    unit = StringField("Unit", validators=[Optional(), Length(max=32)])
    kind = SelectField(
        "Kind",
        choices=[SelectChoice(kind, kind) for kind in ("gauge", "power", "counter")],
        default="gauge",
        validate_choice=False,  # manage.update_field refuses others with the reason
    )
    scale = StringField("Scale", validators=[Optional(), Length(max=40)])
    offset = StringField("Offset", validators=[Optional(), Length(max=40)])
    expression = StringField("Computed as", validators=[Optional(), Length(max=500)])
    remove = BooleanField("Remove (deletes its data)")


class ChannelForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=255)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=10_000)])
    public = BooleanField("Public (anyone may view the channel and its charts)")
    fields = FieldList(FormField(FieldRow), min_entries=1)
    devices = TextAreaField(
        "Allowed devices (one MAC address or device id per line; empty = any device)",
        validators=[Optional(), Length(max=20_000)],
    )
    latitude = StringField("Latitude", validators=[Optional(), Length(max=32)])
    longitude = StringField("Longitude", validators=[Optional(), Length(max=32)])
    elevation = StringField("Elevation (m)", validators=[Optional(), Length(max=32)])
    metadata = TextAreaField(
        "Metadata (ThingSpeak's: free text)", validators=[Optional(), Length(max=65_536)]
    )
    tags = StringField("Tags (comma-separated)", validators=[Optional(), Length(max=5_000)])
    pairs = TextAreaField(
        'Key-value pairs (a JSON object, e.g. {"firmware": "1.4.2"})',
        validators=[Optional(), Length(max=20_000)],
    )
    retention_days = StringField(
        "Keep data for (days; empty = forever)", validators=[Optional(), Length(max=8)]
    )
    min_interval_s = StringField(
        "Rate limit: seconds between writes (0 = none)", validators=[Optional(), Length(max=8)]
    )


class AlertForm(FlaskForm):
    """A new alert rule: a threshold on a field, or a silence of the channel or of a device."""

    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    kind = StringField("Kind", default="threshold", validators=[AnyOf(["threshold", "silence"])])
    field = StringField("Field", validators=[Optional(), Length(max=255)])
    op = StringField("Condition", default="above", validators=[Optional(), AnyOf(["above", "below"])])
    threshold = StringField("Value", validators=[Optional(), Length(max=32)])
    for_minutes = StringField("For (minutes)", validators=[Optional(), Length(max=8)])
    hysteresis = StringField("Hysteresis", validators=[Optional(), Length(max=32)])
    silence_minutes = StringField("Silent for (minutes)", validators=[Optional(), Length(max=8)])
    device = StringField("Device (empty = the whole channel)", validators=[Optional(), Length(max=64)])
    webhook_url = StringField("Webhook URL", validators=[Optional(), Length(max=2000)])
    email_to = StringField("E-mail to", validators=[Optional(), Length(max=320)])
    mqtt_topic = StringField("MQTT topic", validators=[Optional(), Length(max=255)])


class KeyForm(FlaskForm):
    # A plain string checked against the two kinds: WTForms 3.3 deprecates tuple choices, older
    # versions lack SelectChoice, and the template draws the <select> itself.
    kind = StringField("Kind", default="write", validators=[AnyOf(["write", "read"])])
    device = StringField(
        "Bind to device (optional, write keys only)", validators=[Optional(), Length(max=64)]
    )
    label = StringField("Label (optional)", validators=[Optional(), Length(max=200)])


class UserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password (8+ characters)", validators=[DataRequired(), Length(min=8, max=200)])
    is_admin = BooleanField("Administrator")


class PasswordForm(FlaskForm):
    password = PasswordField(
        "New password (8+ characters)", validators=[DataRequired(), Length(min=8, max=200)]
    )


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired()])
    skip_bad = BooleanField("Import the good rows even if some rows are bad")


class OwnPasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
    password = PasswordField(
        "New password (8+ characters)", validators=[DataRequired(), Length(min=8, max=200)]
    )
    confirm = PasswordField(
        "New password again", validators=[DataRequired(), EqualTo("password", message="the two differ")]
    )


class DeleteUserForm(FlaskForm):
    #: The id of the account that takes the channels over, or "" to delete them with the account.
    heir = SelectField("Their channels", choices=[], validate_choice=True)

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
from wtforms.validators import AnyOf, DataRequired, Length, Optional


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

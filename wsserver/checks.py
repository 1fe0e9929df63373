"""System checks of the relay's own settings (the app's are in notifications.checks)."""

from django.core.checks import Error, Tags, register

from notifications.conf import app_settings

from .addresses import parse_address


@register(Tags.compatibility)
def check_metrics_address(app_configs, **kwargs):
    address = app_settings.WSSERVER_METRICS_ADDRESS
    if address is None:
        return []
    try:
        parse_address(address)
    except ValueError as error:
        return [
            Error(
                f"WSSERVER_METRICS_ADDRESS: {error}",
                hint="Use host:port, e.g. '127.0.0.1:9765' (a private address: /metrics and the detailed /healthz "
                "are for your monitoring), or None to serve /metrics on the relay's port.",
                id="wsserver.E001",
            )
        ]
    return []


@register(Tags.compatibility)
def check_compression(app_configs, **kwargs):
    value = app_settings.WSSERVER_COMPRESSION
    if isinstance(value, bool):
        return []
    return [
        Error(
            f"WSSERVER_COMPRESSION must be True or False, not {value!r}.",
            hint="True compresses frames for the clients that offer permessage-deflate (more CPU and memory per "
            "connection, fewer bytes on the wire: see the performance documentation); False sends them as they are.",
            id="wsserver.E002",
        )
    ]

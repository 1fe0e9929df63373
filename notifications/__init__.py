"""
Live in-browser notifications for an existing Django site.

    from notifications import notify, announce, mark_read, mark_all_read

The functions are loaded on first use, so importing the package does not import models
before Django's app registry is ready.
"""

__all__ = ["notify", "announce", "mark_read", "mark_all_read"]


def __getattr__(name):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
